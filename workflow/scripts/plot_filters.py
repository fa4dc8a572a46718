"""Rule plot_filters: results/{experiment}/filters.png, display_network of W1ᵀ."""

from sparseae.pipeline.experiment import plot_filters
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    plot_filters,
    smk.input.theta,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
)
