"""Rule check_stacked_gradient: fine-tuning gradient on a small stack -> stacked_gradcheck.json.

A failed check stops the pipeline before fine-tuning with one message (no traceback).
"""

import logging
import sys

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import check_stacked_gradient

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
try:
    check_stacked_gradient(
        smk.input.data, smk.output[0], smk.wildcards.experiment, smk.params.settings
    )
except RuntimeError as error:
    logging.error("%s", error)
    sys.exit(str(error))
