"""Rule write_finetune_trajectory: results/{experiment}/finetune/trajectory.json."""

from sparseae.pipeline.stacked import write_finetune_trajectory
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    write_finetune_trajectory,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
)
