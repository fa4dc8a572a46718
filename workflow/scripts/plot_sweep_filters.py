"""Rule plot_sweep_filters: results/sweeps/{sweep}/filters.png, every member's filter grid."""

from sparseae.rulelog import run_rule
from sparseae.sweep import plot_sweep_filters

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    plot_sweep_filters,
    smk.wildcards.sweep,
    smk.input.tsv,
    list(smk.input.filters),
    smk.output[0],
)
