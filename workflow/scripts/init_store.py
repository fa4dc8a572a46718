"""Rule init_store: create the MLflow store and the run's experiments once, before logging.

The marker's name carries the store's identity token (see sparseae.tracking.store_marker);
init_store records it in the store and replaces earlier markers.
"""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.tracking import configure_http_retries, init_store

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
configure_http_retries()
ids = init_store(smk.params.uri, list(smk.params.experiments), marker=smk.output[0])
logging.info("tracking store %s ready; experiments %s", smk.params.uri, ids)
