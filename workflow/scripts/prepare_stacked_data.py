"""Rule prepare_stacked_data: the training or test digits -> stacked_{part}.npz."""

from sparseae.pipeline.stacked import prepare_stacked_data
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(smk.log[0], prepare_stacked_data, smk.output[0], smk.params.source, smk.params.images)
