"""Rule sample_patches: prepare the images and sample the training patches -> patches.npz."""

from sparseae.pipeline.experiment import sample_patches
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0], sample_patches, smk.output[0], name=smk.wildcards.experiment, data=smk.params.data
)
