"""Rule fetch: download (or copy) a data source into resources/{source}/, verified.

Calls the same function as ``sparseae fetch SOURCE``; the marker file lists what was fetched.
"""

import logging
import sys

from sparseae.datasets import fetch, get_source
from sparseae.io import write_json

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
# An error goes to this job's log too, where Snakemake's error report sends the user.
sys.excepthook = lambda *exc: (logging.critical("failed:", exc_info=exc), sys.__excepthook__(*exc))
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
