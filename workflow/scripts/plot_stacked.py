"""Rule plot_stacked: layer 1's filters before/after fine-tuning, every stage's cost curve."""

from sparseae.pipeline.stacked import plot_stacked
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    plot_stacked,
    smk.input.stack,
    smk.params.stages,
    {name: smk.output[name] for name in ("filters_before", "filters_after", "curves")},
    name=smk.wildcards.experiment,
    hidden_sizes=smk.params.hidden_sizes,
)
