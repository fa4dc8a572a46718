"""Rule classify_pooled: softmax on the pooled features and on raw pixels -> cnn_evaluation.json."""

from sparseae.pipeline.cnn import classify_pooled
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    classify_pooled,
    smk.input.chunks,
    smk.output[0],
    labeled=smk.input.images,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    pooling=smk.params.pooling,
    settings=smk.params.softmax,
)
