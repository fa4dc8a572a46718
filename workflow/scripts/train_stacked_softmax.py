"""Rule train_stacked_softmax: softmax regression on the last layer's features -> softmax.npz."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import train_stacked_softmax

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0], fmt="%(asctime)s %(message)s")
train_stacked_softmax(
    smk.input.features,
    smk.input.data,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
)
