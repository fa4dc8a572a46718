"""Rule fetch: download (or copy) a data source into resources/{source}/, verified.

Calls the same function as ``sparseae fetch SOURCE``; the marker file lists what was fetched.
"""

from sparseae.data import fetch_source, get_source
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
source, split = smk.wildcards.source, smk.wildcards.split
# The config's mirrors and checksums (md5 of a small archive of your own) for this source.
entry = {"mirrors": list(smk.params.mirrors), "md5": dict(smk.params.md5)}
run_rule(
    smk.log[0],
    fetch_source,
    source,
    smk.params.dest,
    {"sources": {source: entry}},
    # Sources with splits (mnist) fetch only the files the chosen split needs.
    split=split if get_source(source).splits else None,
    marker=smk.output[0],
)
