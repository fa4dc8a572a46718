"""Rule log_mlflow: log a finished result folder to MLflow; write results/{exp}/mlflow.json.

The files on disk are the source of truth; logging is idempotent, so rerunning after a
tracking failure fills in what is missing without duplicating metric points.
"""

from sparseae.rulelog import run_rule
from sparseae.tracking.logger import log_mlflow

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    log_mlflow,
    smk.params.result_dir,
    experiment_name=smk.params.mlflow_experiment,
    tracking_uri=smk.params.uri,
    log_dir=smk.params.log_dir,
    tags=dict(smk.params.tags) or None,
    chunks=smk.params.chunks,
)
