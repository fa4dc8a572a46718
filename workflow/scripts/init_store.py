"""Rule init_store: create the MLflow store and the run's experiments once, before logging."""

import logging

from sparseae.io import write_json
from sparseae.rulelog import log_to_rule_log
from sparseae.tracking import configure_http_retries, init_store

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
retries = configure_http_retries()
ids = init_store(smk.params.uri, list(smk.params.experiments))
write_json(smk.output[0], {"uri": smk.params.uri, "experiments": ids, "http": retries})
logging.info("tracking store %s ready; experiments %s", smk.params.uri, ids)
