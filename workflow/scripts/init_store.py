"""Rule init_store: create the MLflow store and the run's experiments once, before logging."""

import logging
import sys

from sparseae.io import write_json
from sparseae.tracking import configure_http_retries, init_store

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
# An error goes to this job's log too, where Snakemake's error report sends the user.
sys.excepthook = lambda *exc: (logging.critical("failed:", exc_info=exc), sys.__excepthook__(*exc))
retries = configure_http_retries()
ids = init_store(smk.params.uri, list(smk.params.experiments))
write_json(smk.output[0], {"uri": smk.params.uri, "experiments": ids, "http": retries})
logging.info("tracking store %s ready; experiments %s", smk.params.uri, ids)
