"""Rule prepare_stacked_data: the training or test digits -> stacked_{part}.npz."""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import prepare_stacked_data

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
shape = prepare_stacked_data(smk.output[0], smk.params.source, smk.params.images)
logging.info("wrote %s: images %s", smk.output[0], shape)
