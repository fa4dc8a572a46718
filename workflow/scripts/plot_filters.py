"""Rule plot_filters: filters.png and filters_array.npy, display_network of W1ᵀ."""

from sparseae.pipeline.experiment import plot_filters
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    plot_filters,
    smk.input.theta,
    smk.output.png,
    array=smk.output.array,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    patches=getattr(smk.input, "patches", None),
)
