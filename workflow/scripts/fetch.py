"""Rule fetch: download (or copy) a data source into resources/{source}/, verified.

Calls the same function as ``sparseae fetch SOURCE``; the marker file lists what was fetched.
"""

import logging

from sparseae.datasets import fetch, get_source
from sparseae.io import write_json
from sparseae.rulelog import log_to_rule_log

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
source, split = smk.wildcards.source, smk.wildcards.split
# Sources with splits (mnist) fetch only the files the chosen split needs.
files = fetch(
    source,
    smk.params.dest,
    list(smk.params.mirrors) or None,
    split=split if get_source(source).splits else None,
)
write_json(
    smk.output[0],
    {"source": source, "split": split, "dest": smk.params.dest, "files": [str(f) for f in files]},
)
logging.info("fetched %s (%s) into %s: %s", source, split, smk.params.dest, files)
