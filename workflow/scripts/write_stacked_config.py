"""Rule write_stacked_config: results/{experiment}/stacked_config.json (config, fingerprints)."""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import write_stacked_config

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
record = write_stacked_config(smk.output[0], smk.wildcards.experiment, smk.params.experiment)
logging.info("wrote %s (stage fingerprints %s)", smk.output[0], record["fingerprints"])
