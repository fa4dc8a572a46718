"""Rule evaluate_stacked: test accuracy before/after fine-tuning -> stacked_evaluation.json."""

from sparseae.pipeline.stacked import evaluate_stacked
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    evaluate_stacked,
    smk.input.train,
    smk.input.test,
    smk.input.stack,
    smk.params.stages,
    {name: smk.output[name] for name in ("evaluation", "confusion_before", "confusion_after")},
    trajectory=smk.params.trajectory,
)
