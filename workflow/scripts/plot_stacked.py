"""Rule plot_stacked: layer 1's filters before/after fine-tuning, every stage's cost curve."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import plot_stacked

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
plot_stacked(
    smk.input.stack,
    smk.params.stages,
    {name: smk.output[name] for name in ("filters_before", "filters_after", "curves")},
    name=smk.wildcards.experiment,
    hidden_sizes=smk.params.hidden_sizes,
)
