"""Rule check_stacked_gradient: fine-tuning gradient on a small stack -> stacked_gradcheck.json.

A failed check stops the pipeline before fine-tuning with one message (no traceback).
"""

from sparseae.pipeline.stacked import check_stacked_gradient
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    check_stacked_gradient,
    smk.input.data,
    smk.output[0],
    smk.wildcards.experiment,
    smk.params.settings,
)
