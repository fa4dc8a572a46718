"""Rule evaluate: self-taught evaluation -> evaluation.json, confusion_{features,raw}.png."""

from sparseae.pipeline.experiment import evaluate
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    evaluate,
    smk.input.theta,
    smk.input.patches,
    smk.output.evaluation,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    settings=smk.params.evaluation,
)
