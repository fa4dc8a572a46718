"""Rule log_mlflow: log a finished result folder to MLflow; write results/{exp}/mlflow.json.

The files on disk are the source of truth; logging is idempotent, so rerunning after a
tracking failure fills in what is missing without duplicating metric points.
"""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.tracking import configure_http_retries, log_results

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
configure_http_retries()
run_id = log_results(
    smk.params.result_dir,
    experiment_name=smk.params.mlflow_experiment,
    tracking_uri=smk.params.uri,
    log_dir=smk.params.log_dir,
    tags=dict(smk.params.tags) or None,
    chunks=smk.params.chunks,
)
# log_results itself writes results/{exp}/mlflow.json (run id, counts logged, what was
# missing) atomically as its last step: that file is this rule's output.
logging.info("logged %s to %s, run %s", smk.params.result_dir, smk.params.uri, run_id)
