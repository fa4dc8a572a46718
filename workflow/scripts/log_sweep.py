"""Rule log_sweep: a parent MLflow run for the sweep, its table attached, members nested.

Runs after every member's log_mlflow (their mlflow.json name the member runs). Idempotent:
rerunning finds the parent run again by its tags (sweep name and a hash of its settings, so
a changed grid gets a new parent run) and adds only what is missing or changed.
"""

from sparseae.rulelog import run_rule
from sparseae.tracking import log_sweep

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    log_sweep,
    smk.wildcards.sweep,
    list(smk.params.member_dirs),
    tracking_uri=smk.params.uri,
    experiment_name=smk.params.mlflow_experiment,
    artifacts=[smk.input.tsv, smk.input.html, smk.input.png, smk.input.filters],
    params=smk.params.settings,
    output=smk.output[0],
)
