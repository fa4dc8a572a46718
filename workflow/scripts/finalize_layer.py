"""Rule finalize_layer: layer l's theta.npz and its features of the training images."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import finalize_layer

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
finalize_layer(
    list(smk.input.chunks),
    smk.input.data,
    smk.output.theta,
    smk.output.features,
    trajectory=smk.params.trajectory,
    threads=smk.threads,
)
