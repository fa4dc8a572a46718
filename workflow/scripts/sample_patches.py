"""Rule sample_patches: prepare images, sample and normalize patches -> patches.npz (``data``).

Image sources: load the images (1/f-whitened where the source holds raw photographs, or as
``dataset.whiten`` says), sample ``patches.count`` patches of ``patches.size``² pixels with the
experiment's "patches" generator, optionally ZCA-whiten them, then normalizeData. Digit
sources (``patches.size: null``): whole images, pixels / 255, optional label filter.
"""

import logging

import numpy as np

from sparseae import datasets
from sparseae.checks import check_examples_left, check_loaded_images
from sparseae.config import check_image_inputs, check_patch_fits, rng
from sparseae.io import atomic_path
from sparseae.patches import normalize_patches, sample_patches
from sparseae.rulelog import log_to_rule_log
from sparseae.whitening import ZCA

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
name = smk.wildcards.experiment
dataset, patch_cfg, model = smk.params.dataset, smk.params.patches, smk.params.model
experiment = {"dataset": dataset, "patches": patch_cfg, "model": model}
source = dataset["source"]
dest = f"resources/{source}"
generator = rng(smk.params.seed, "patches")

if patch_cfg["size"] is None:
    data, labels = datasets.load_mnist(dest, dataset["split"], dataset["num_images"])
    if dataset["digits"] is not None:
        data = data[:, np.isin(labels, dataset["digits"])]
        check_examples_left(name, experiment, data.shape[1])
    check_image_inputs(name, experiment, data.shape[0])
    logging.info("%s: %d whole images of %d pixels", source, data.shape[1], data.shape[0])
else:
    whiten = dataset["whiten"]
    # "auto": the source's own setting (raw photographs are 1/f-whitened, IMAGES.mat is not).
    images = datasets.load_images(
        source,
        dest if dataset["path"] is None else dataset["path"],
        path=dataset["path"],
        whiten=None if whiten == "auto" else bool(whiten),
    )
    check_loaded_images(name, experiment, images.shape[2], dataset["path"] or f"source {source!r}")
    if dataset["num_images"] is not None:
        images = images[..., : dataset["num_images"]]
    check_patch_fits(name, experiment, images.shape[:2])
    logging.info(
        "%s: %d images of %dx%d (whiten: %s)",
        source,
        images.shape[2],
        images.shape[0],
        images.shape[1],
        whiten,
    )
    data = sample_patches(images, patch_cfg["size"], patch_cfg["count"], generator)
    if patch_cfg["whitening"]["method"] == "zca":
        data = ZCA(epsilon=patch_cfg["whitening"]["epsilon"]).fit(data).transform(data)
    if patch_cfg["normalize"]:
        data = normalize_patches(data)

data = np.ascontiguousarray(data, dtype=np.float64)
with atomic_path(smk.output[0]) as tmp:
    np.savez(tmp, data=data)
logging.info(
    "wrote %s: data %s, min %.4f max %.4f mean %.4f",
    smk.output[0],
    data.shape,
    data.min(),
    data.max(),
    data.mean(),
)
