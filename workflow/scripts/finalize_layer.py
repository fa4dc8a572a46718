"""Rule finalize_layer: layer l's theta.npz and its features of the training images."""

from sparseae.pipeline.stacked import finalize_layer
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    finalize_layer,
    list(smk.input.chunks),
    smk.input.data,
    smk.output.theta,
    smk.output.features,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    threads=smk.threads,
)
