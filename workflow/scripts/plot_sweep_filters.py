"""Rule plot_sweep_filters: results/sweeps/{sweep}/filters.png, every member's filter grid."""

from sparseae.pipeline.sweep import plot_sweep_filters
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    plot_sweep_filters,
    smk.wildcards.sweep,
    smk.input.tsv,
    list(smk.input.filters),
    smk.output[0],
)
