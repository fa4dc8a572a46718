"""Rule write_trajectory: results/{experiment}/trajectory.json, the settings of its numbers."""

from sparseae.pipeline.experiment import write_trajectory
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    write_trajectory,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
)
