"""UFLDL's own STL-10 ``.mat`` files as the source of both exercises: small files in the
tutorial's layout (tests/stl10_archive.py), the linear decoder's patches taken as they are and
the convolution exercise's images classified as stored, every step run in-process."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from stl10_archive import write_ufldl_mats

from sparseae.config import fingerprint, resolve_config, trajectory_config
from sparseae.data import dataset_checksum, load_images
from sparseae.data.whitening import ZCA
from sparseae.errors import DatasetError, ForeignResultError
from sparseae.io import read_json, read_npz, save_theta_npz
from sparseae.model import autoencoder
from sparseae.pipeline import cnn
from sparseae.pipeline.experiment import data_config, sample_patches

pytestmark = pytest.mark.fast


def experiment_of(folder):
    """A linear decoder on stlSampledPatches.mat, its features convolved over the subsets."""
    mats = {part: str(folder / f"stl{part.title()}Subset.mat") for part in ("train", "test")}
    images = {"source": "stl10", "size": 64}
    images.update({part: {"path": mats[part], "start": 0, "stop": 8} for part in mats})
    settings = {
        "dataset": {"source": "stl10", "path": str(folder / "stlSampledPatches.mat")},
        "patches": {"size": 8, "channels": 3, "count": 200, "normalize": False},
        "model": {"visible_size": 192, "hidden_size": 3, "output": "linear", "rho": 0.05},
        "cnn": {"images": images, "pool_size": 19, "features_per_chunk": 2},
    }
    settings["patches"]["whitening"] = {"method": "zca-mean-patch", "epsilon": 0.1}
    config = resolve_config({"run": ["colour"], "experiments": {"colour": settings}})
    return config.experiments["colour"]


def test_the_linear_decoder_takes_the_sampled_patches_as_they_are(tmp_path):
    made = write_ufldl_mats(tmp_path)
    experiment = experiment_of(tmp_path)
    path = experiment.dataset["path"]
    # The columns are this package's colour patch layout: each one is a patch image's P(:).
    np.testing.assert_array_equal(load_images("stl10", path=path), made["patches"])
    columns = made["patches"][..., :200].reshape(192, 200, order="F")
    sample_patches(tmp_path / "patches.npz", name="colour", data=data_config(experiment))
    found = read_npz(tmp_path / "patches.npz", ["data", "zca", "zca_mean"], label="patches")
    zca = ZCA(epsilon=0.1, centre="pixel").fit(columns)  # not sampled again: the first 200
    np.testing.assert_allclose(found["data"], zca.transform(columns), atol=1e-12)
    np.testing.assert_array_equal(found["zca_mean"], columns.mean(axis=1))
    # The content of the file is what identifies the data (MLflow's dataset checksum).
    before = dataset_checksum("stl10", path=path)
    scipy.io.savemat(path, {"patches": columns[:, ::-1]})
    assert dataset_checksum("stl10", path=path) != before
    data = data_config(experiment)
    data["patches"]["count"] = 201
    with pytest.raises(DatasetError, match=r"count = 201, .* holds 200 .*allowed: size 8, count"):
        sample_patches(tmp_path / "p.npz", name="colour", data=data)


def test_the_convolution_exercise_classifies_the_subset_images_as_stored(tmp_path):
    made = write_ufldl_mats(tmp_path)
    experiment = experiment_of(tmp_path)
    trajectory, pooling = trajectory_config(experiment), cnn.pooling_config(experiment)
    sample_patches(tmp_path / "patches.npz", name="colour", data=data_config(experiment))
    theta = autoencoder.initialize_parameters(3, 192, np.random.default_rng(3))
    record = {"fingerprint": fingerprint(trajectory)}
    save_theta_npz(tmp_path / "theta.npz", theta, config=record)
    labeled = tmp_path / "cnn_images.npz"
    shapes = cnn.prepare_images(labeled, name="colour", images=pooling["images"])
    assert shapes["train"] == (64, 64, 3, 8) and shapes["test_labels"] == (8,)
    steps = {"name": "colour", "trajectory": trajectory, "pooling": pooling}
    for part, (images, labels) in cnn.read_labeled(labeled, name="colour", pooling=pooling).items():
        np.testing.assert_array_equal(images, made[part][0])  # no resizing
        np.testing.assert_array_equal(labels, made[part][1])
    files = {"theta": tmp_path / "theta.npz", "patches": tmp_path / "patches.npz"}
    chunks = [tmp_path / f"{k}.npz" for k in (1, 2)]
    for k, chunk in enumerate(chunks, start=1):
        cnn.convolve_pool(chunk, k=k, **files, labeled=labeled, **steps)
    settings = {"lambda_": 1e-4, "max_iter": 20}
    output = tmp_path / "cnn_evaluation.json"
    cnn.classify_pooled(chunks, output, labeled=labeled, **steps, settings=settings)
    result = read_json(output, key=fingerprint(trajectory))
    sizes = ("n_train", "n_test", "pooled_rows", "pooled_cols", "pooled_features")
    assert [result[k] for k in sizes] == [8, 8, 3, 3, 27]

    # cnn_images.npz of other images settings is refused by the steps that read it.
    other = {**pooling, "images": {**pooling["images"], "train": {"start": 0, "stop": 4}}}
    with pytest.raises(ForeignResultError, match=r"cnn_images\.npz belongs to labeled images"):
        cnn.read_labeled(labeled, name="colour", pooling=other)
    # The .mat images are 64x64 of the tutorial's four classes: other sizes or classes refused.
    for key, value in (("size", 32), ("classes", ["cat", "dog"])):
        images = {**pooling["images"], key: value}
        with pytest.raises(DatasetError, match=r"stlTrainSubset\.mat holds the classes"):
            cnn.labeled_images(images)
