"""Rule finalize_stacked: stack.npz with the pretrained and the fine-tuned stack."""

from sparseae.rulelog import run_rule
from sparseae.stacked_pipeline import finalize_stacked

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
