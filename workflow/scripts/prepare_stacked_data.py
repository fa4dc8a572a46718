"""Rule prepare_stacked_data: the training and test digits -> stacked_data.npz."""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import prepare_stacked_data

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
dataset = smk.params.dataset
shapes = prepare_stacked_data(smk.output[0], dataset, folder=f"resources/{dataset['source']}")
logging.info("wrote %s: %s", smk.output[0], shapes)
