"""Rule fetch: download (or copy) a data source into resources/{source}/, verified.

Calls the same function as ``sparseae fetch SOURCE``; the marker file lists what was fetched.
"""

from sparseae.data import fetch, get_source
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
source, split = smk.wildcards.source, smk.wildcards.split
run_rule(
    smk.log[0],
    fetch,
    source,
    smk.params.dest,
    list(smk.params.mirrors) or None,
    # Sources with splits (mnist) fetch only the files the chosen split needs.
    split=split if get_source(source).splits else None,
    marker=smk.output[0],
)
