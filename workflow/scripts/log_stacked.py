"""Rule log_stacked: one MLflow run for the stacked experiment, a nested run per stage.

Idempotent (sparseae.tracking.stacked): rerunning after a tracking failure adds only what is
missing; writes results/{experiment}/stacked_mlflow.json last.
"""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.tracking import configure_http_retries
from sparseae.tracking.stacked import log_stacked

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
configure_http_retries()
run_id = log_stacked(
    f"results/{smk.wildcards.experiment}",
    experiment_name=smk.params.mlflow_experiment,
    tracking_uri=smk.params.uri,
    stages=smk.params.stages,
    log_dir=smk.params.log_dir,
    output=smk.output[0],
)
logging.info("logged results/%s to %s, run %s", smk.wildcards.experiment, smk.params.uri, run_id)
