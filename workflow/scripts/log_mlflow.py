"""Rule log_mlflow: log a finished result folder to MLflow; write results/{exp}/mlflow.json.

The files on disk are the source of truth; logging is idempotent, so rerunning after a
tracking failure fills in what is missing without duplicating metric points.
"""

import logging
import sys

from sparseae.tracking import configure_http_retries, log_results

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
# An error goes to this job's log too, where Snakemake's error report sends the user.
sys.excepthook = lambda *exc: (logging.critical("failed:", exc_info=exc), sys.__excepthook__(*exc))
configure_http_retries()
run_id = log_results(
    smk.params.result_dir,
    experiment_name=smk.params.mlflow_experiment,
    tracking_uri=smk.params.uri,
    log_dir=smk.params.log_dir,
    tags=dict(smk.params.tags) or None,
)
# log_results itself writes results/{exp}/mlflow.json (run id, counts logged, what was
# missing) atomically as its last step: that file is this rule's output.
logging.info("logged %s to %s, run %s", smk.params.result_dir, smk.params.uri, run_id)
