"""Rule write_config: results/{experiment}/config.json, the resolved experiment config."""

import logging
import sys

from sparseae.config import write_config

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
# An error goes to this job's log too, where Snakemake's error report sends the user.
sys.excepthook = lambda *exc: (logging.critical("failed:", exc_info=exc), sys.__excepthook__(*exc))
record = write_config(smk.output[0], smk.wildcards.experiment, smk.params.experiment)
logging.info("wrote %s (fingerprint %s)", smk.output[0], record["fingerprint"])
