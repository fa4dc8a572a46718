"""Rule finalize_stacked: stack.npz with the pretrained and the fine-tuned stack."""

from sparseae.pipeline.stacked import finalize_stacked
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    finalize_stacked,
    list(smk.input.layers),
    smk.input.softmax,
    list(smk.input.chunks),
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
)
