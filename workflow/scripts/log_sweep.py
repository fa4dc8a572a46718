"""Rule log_sweep: a parent MLflow run for the sweep, its table attached, members tagged.

Runs after every member's log_mlflow (their mlflow.json name the member runs). Idempotent:
rerunning finds the parent run again by its tags and adds only what is missing.
"""

import logging

from sparseae.tracking import configure_http_retries, log_sweep

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
configure_http_retries()
artifacts = [smk.input.tsv, smk.input.html, smk.input.png]
# log_sweep attaches one summary file per call; every call is idempotent (params, member
# tags and artifacts already there are left alone), so the table's three views take three.
for index, artifact in enumerate(artifacts):
    run_id = log_sweep(
        smk.wildcards.sweep,
        list(smk.params.member_dirs),
        tracking_uri=smk.params.uri,
        experiment_name=smk.params.mlflow_experiment,
        summary_path=artifact,
        params=smk.params.settings,
        output=smk.output[0] if index == len(artifacts) - 1 else None,
    )
    logging.info("sweep %s: parent run %s, attached %s", smk.wildcards.sweep, run_id, artifact)
