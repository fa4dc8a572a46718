"""Rule log_sweep: a parent MLflow run for the sweep, its table attached, members tagged.

Runs after every member's log_mlflow (their mlflow.json name the member runs). Idempotent:
rerunning finds the parent run again by its tags (sweep name and a hash of its settings, so
a changed grid gets a new parent run) and adds only what is missing or changed.
"""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.tracking import configure_http_retries, log_sweep

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
configure_http_retries()
# One call: the parent run (found again by the sweep's name and settings), the table's three
# views and the filters' contact sheet uploaded when new or changed (manifest), member runs
# nested under it, mlflow.json written.
run_id = log_sweep(
    smk.wildcards.sweep,
    list(smk.params.member_dirs),
    tracking_uri=smk.params.uri,
    experiment_name=smk.params.mlflow_experiment,
    artifacts=[smk.input.tsv, smk.input.html, smk.input.png, smk.input.filters],
    params=smk.params.settings,
    output=smk.output[0],
)
logging.info("sweep %s: parent run %s", smk.wildcards.sweep, run_id)
