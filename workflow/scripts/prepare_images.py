"""Rule prepare_images: the labeled train and test images, read once into cnn_images.npz."""

from sparseae.pipeline.cnn import prepare_images
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    prepare_images,
    smk.output[0],
    name=smk.wildcards.experiment,
    images=smk.params.images,
)
