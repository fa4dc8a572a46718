"""Rule evaluate_stacked: test accuracy before/after fine-tuning -> stacked_evaluation.json."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import evaluate_stacked

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
evaluate_stacked(
    smk.input.train,
    smk.input.test,
    smk.input.stack,
    smk.params.stages,
    {name: smk.output[name] for name in ("evaluation", "confusion_before", "confusion_after")},
    trajectory=smk.params.trajectory,
)
