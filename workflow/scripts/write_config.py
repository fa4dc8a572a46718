"""Rule write_config: results/{experiment}/config.json, the resolved experiment config."""

import logging

from sparseae.config import write_config

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
record = write_config(smk.output[0], smk.wildcards.experiment, smk.params.experiment)
logging.info("wrote %s (fingerprint %s)", smk.output[0], record["fingerprint"])
