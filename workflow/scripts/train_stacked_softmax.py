"""Rule train_stacked_softmax: softmax regression on the last layer's features -> softmax.npz."""

from sparseae.pipeline.stacked import train_stacked_softmax
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    train_stacked_softmax,
    smk.input.features,
    smk.input.data,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    fmt="%(asctime)s %(message)s",  # progress lines as a table under the timestamps
)
