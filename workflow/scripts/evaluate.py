"""Rule evaluate: self-taught evaluation -> evaluation.json, confusion_{features,raw}.png.

Loads the same images the autoencoder's data came from (source, split, first
``dataset.num_images``), splits them with :func:`sparseae.evaluate.self_taught_split`:
unlabeled = ``dataset.digits``, labeled = ``evaluation.labeled_digits`` halved per digit with
the experiment's "split" generator. Before classifying, it checks that ``patches.npz`` (what
the autoencoder trained on) is exactly the unlabeled set, so no labeled digit ever shaped the
features. Then :func:`sparseae.evaluate.evaluate_features` fits softmax on the hidden
activations and on the raw pixels with the same λ and iteration limit, and
:func:`sparseae.evaluate.save_evaluation` writes the JSON and the two confusion matrices.
"""

import hashlib
import logging
from pathlib import Path

import numpy as np

from sparseae import datasets
from sparseae.config import ConfigError, rng
from sparseae.evaluate import evaluate_features, save_evaluation, self_taught_split, take_split
from sparseae.io import load_theta_npz
from sparseae.rulelog import log_to_rule_log

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
name = smk.wildcards.experiment
key = f"experiments.{name}"
dataset, model, settings = smk.params.dataset, smk.params.model, smk.params.evaluation
if not settings["enabled"]:
    raise ConfigError(
        f"config key '{key}.evaluation.enabled' is false, so there is no evaluation to make for "
        f"'{name}'; allowed: set it to true (digit sources with dataset.digits set)"
    )
v, h = model["visible_size"], model["hidden_size"]

images, labels = datasets.load_mnist(
    f"resources/{dataset['source']}", dataset["split"], dataset["num_images"]
)
try:
    split = self_taught_split(
        labels,
        unlabeled_digits=dataset["digits"],
        labeled_digits=settings["labeled_digits"],
        train_fraction=settings["train_fraction"],
        rng=rng(smk.params.seed, "split"),
    )
except ValueError as error:
    raise ConfigError(
        f"experiment '{name}': the self-taught split of the {labels.size} images of "
        f"{dataset['source']} ({dataset['split']}) is impossible: {error}; check "
        f"'{key}.dataset.digits', '{key}.dataset.num_images', "
        f"'{key}.evaluation.labeled_digits' and '{key}.evaluation.train_fraction'"
    ) from None
parts = take_split(images, labels, split)
del images

# The features must come from unlabeled digits only: patches.npz is the autoencoder's data.
with np.load(smk.input.patches, allow_pickle=False) as archive:
    trained_on = archive["data"]  # stored in training.dtype
unlabeled = parts["unlabeled"].astype(trained_on.dtype)
if trained_on.shape != unlabeled.shape or not np.array_equal(trained_on, unlabeled):
    raise RuntimeError(
        f"{smk.input.patches} (shape {trained_on.shape}) is not the unlabeled set of "
        f"experiment '{name}' ({parts['unlabeled'].shape}: digits {dataset['digits']} of the "
        f"first {dataset['num_images'] or 'all'} {dataset['split']} images); it was written "
        f"for another configuration: delete results/{name}/ and rerun"
    )
del trained_on

theta, _ = load_theta_npz(smk.input.theta)
if theta.size != 2 * h * v + h + v:
    raise RuntimeError(
        f"{smk.input.theta} holds {theta.size} parameters, but '{key}.model' "
        f"({v} visible, {h} hidden) needs {2 * h * v + h + v}; delete results/{name}/ and rerun"
    )
logging.info(
    "%s: %d unlabeled (digits %s), %d train / %d test labeled (digits %s, train_fraction %g)",
    name,
    split["unlabeled"].size,
    dataset["digits"],
    split["train"].size,
    split["test"].size,
    settings["labeled_digits"],
    settings["train_fraction"],
)

softmax = settings["softmax"]
result = evaluate_features(
    theta,
    parts["X_train"],
    parts["y_train"],
    parts["X_test"],
    parts["y_test"],
    visible_size=v,
    hidden_size=h,
    lambda_=softmax["lambda_"],
    max_iter=softmax["max_iter"],
)


def digest(indices):
    """sha256 of an index array (little-endian int64): the split, comparable across runs."""
    data = np.ascontiguousarray(indices, dtype="<i8").tobytes()
    return hashlib.sha256(data).hexdigest()


# Settings go in a nested block: config.json already gives them to MLflow as params.
extra = {
    "n_unlabeled": int(split["unlabeled"].size),
    "protocol": {
        "source": dataset["source"],
        "split": dataset["split"],
        "num_images": dataset["num_images"],
        "unlabeled_digits": list(dataset["digits"]),
        "labeled_digits": list(settings["labeled_digits"]),
        "train_fraction": settings["train_fraction"],
        "seed": smk.params.seed,
        "seed_purpose": "split",
        "train_indices_sha256": digest(split["train"]),
        "test_indices_sha256": digest(split["test"]),
    },
}
folder = Path(smk.output.evaluation).parent
paths = save_evaluation(result, folder, extra=extra)
for output in ("evaluation", "confusion_features", "confusion_raw"):
    if Path(paths[output]) != Path(getattr(smk.output, output)):
        raise RuntimeError(f"save_evaluation wrote {paths[output]}, the rule expects {output}")
logging.info(
    "test accuracy: features %.4f, raw pixels %.4f (n_train %d, n_test %d); softmax "
    "iterations features %d (converged %s), raw %d (converged %s)",
    result["accuracy_features"],
    result["accuracy_raw"],
    result["n_train"],
    result["n_test"],
    result["softmax"]["n_iter_features"],
    result["softmax"]["converged_features"],
    result["softmax"]["n_iter_raw"],
    result["softmax"]["converged_raw"],
)
