"""Rule finalize_stacked: stack.npz with the pretrained and the fine-tuned stack."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import finalize_stacked

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
finalize_stacked(
    list(smk.input.layers),
    smk.input.softmax,
    list(smk.input.chunks),
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
)
