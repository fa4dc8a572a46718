"""Rule write_config: results/{experiment}/config.json, the resolved experiment config."""

import logging

from sparseae.config import write_config

logging.basicConfig(
    filename=snakemake.log[0],
    filemode="w",
    level=logging.INFO,  # noqa: F821
    format="%(asctime)s %(levelname)s %(message)s",
)

record = write_config(
    snakemake.output[0],
    snakemake.wildcards.experiment,  # noqa: F821
    snakemake.params.experiment,
)  # noqa: F821
logging.info("wrote %s (fingerprint %s)", snakemake.output[0], record["fingerprint"])  # noqa: F821
