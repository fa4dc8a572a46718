"""Rule init_store: create the MLflow tracking store once, before parallel logging jobs."""

import logging

from sparseae.io import write_json
from sparseae.tracking import configure_http_retries, init_store

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
retries = configure_http_retries()
info = init_store(smk.params.uri)
write_json(
    smk.output[0],
    {
        "uri": smk.params.uri,
        "http_retries": retries,
        "store": info if isinstance(info, dict) else str(info),
    },
)
logging.info("tracking store ready: %s", smk.params.uri)
