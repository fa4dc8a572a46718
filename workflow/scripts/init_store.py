"""Rule init_store: create the MLflow store and the run's experiments once, before logging.

The marker's name carries the store's identity token (see sparseae.tracking.store_marker);
init_store records it in the store and replaces earlier markers.
"""

from sparseae.rulelog import run_rule
from sparseae.tracking import init_store

smk = snakemake  # noqa: F821
run_rule(smk.log[0], init_store, smk.params.uri, list(smk.params.experiments), marker=smk.output[0])
