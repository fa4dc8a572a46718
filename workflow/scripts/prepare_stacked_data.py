"""Rule prepare_stacked_data: the training or test digits -> stacked_{part}.npz."""

from sparseae.rulelog import run_rule
from sparseae.stacked_pipeline import prepare_stacked_data

smk = snakemake  # noqa: F821
run_rule(smk.log[0], prepare_stacked_data, smk.output[0], smk.params.source, smk.params.images)
