"""Rule log_stacked: one MLflow run for the stacked experiment, a nested run per stage.

Idempotent (sparseae.tracking.logger): rerunning after a tracking failure adds only what is
missing; writes results/{experiment}/stacked_mlflow.json last.
"""

from sparseae.rulelog import run_rule
from sparseae.tracking.logger import log_stacked

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    log_stacked,
    f"results/{smk.wildcards.experiment}",
    experiment_name=smk.params.mlflow_experiment,
    tracking_uri=smk.params.uri,
    stages=smk.params.stages,
    log_dir=smk.params.log_dir,
    output=smk.output[0],
)
