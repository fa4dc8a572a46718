"""Rule plot_curves: cost_curve.png (chunk boundaries marked) and rhohat.png."""

from sparseae.pipeline.experiment import plot_curves
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    plot_curves,
    smk.input.history,
    smk.input.summary,
    cost=smk.output.cost,
    rhohat=smk.output.rhohat,
    name=smk.wildcards.experiment,
    rho=smk.params.rho,
)
