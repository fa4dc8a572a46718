"""Rule summarize_sweep: results/sweeps/{sweep}/summary.tsv, summary.html and summary.png."""

from sparseae.pipeline.sweep import summarize_sweep
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    summarize_sweep,
    smk.wildcards.sweep,
    list(smk.params.members),
    smk.params.parameters,
    tsv=smk.output.tsv,
    html_path=smk.output.html,
    png=smk.output.png,
)
