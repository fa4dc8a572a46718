"""Rule write_config: results/{experiment}/config.json, the resolved experiment config."""

import logging

from sparseae.config import write_config
from sparseae.rulelog import log_to_rule_log

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
record = write_config(smk.output[0], smk.wildcards.experiment, smk.params.experiment)
logging.info("wrote %s (fingerprint %s)", smk.output[0], record["fingerprint"])
