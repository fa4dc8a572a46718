"""Convolution and pooling (UFLDL's exercise): the model against direct per-patch computations,
and the pipeline steps' chunks (resume, foreign chunks) on real t10k digits."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.special import expit
from shared_data import shared_file
from tiny_pipeline import CNN_HIDDEN as HIDDEN
from tiny_pipeline import TINY_CNN as CONFIG

from sparseae.config import ConfigError, fingerprint, resolve_config, trajectory_config
from sparseae.errors import ForeignResultError, ResultFileError
from sparseae.io import read_json, save_theta_npz
from sparseae.model import autoencoder
from sparseae.model.convolution import convolve, fold_whitening, mean_pool
from sparseae.pipeline import cnn
from sparseae.pipeline.experiment import data_key

pytestmark = pytest.mark.fast


def whitening(rng, v):
    """A non-identity symmetric ZCA-like matrix and a mean patch."""
    A = rng.standard_normal((v, v))
    return A @ A.T / v + np.eye(v), rng.standard_normal(v)


def test_convolved_features_equal_the_features_of_each_patch():
    # The exercise's check: random positions, features computed on the (whitened, mean
    # removed) patch itself equal the convolved value; 3 channels test the patch(:) layout.
    rng = np.random.default_rng(0)
    patch, channels, hidden = 5, 3, 7
    v = patch * patch * channels
    images = rng.random((12, 10, channels, 4))
    W, b = rng.standard_normal((hidden, v)) / 3, rng.standard_normal(hidden)
    zca, mean = whitening(rng, v)
    convolved = convolve(images, *fold_whitening(W, b, zca, mean), patch)
    assert convolved.shape == (hidden, 8, 6, 4)
    for _ in range(30):
        r, c, i = rng.integers(8), rng.integers(6), rng.integers(4)
        x = images[r : r + patch, c : c + patch, :, i].ravel(order="F")
        np.testing.assert_allclose(
            convolved[:, r, c, i], expit(W @ (zca @ (x - mean)) + b), rtol=0, atol=1e-9
        )
    # Without whitening the features are the raw patch's (identity, zero mean).
    plain = convolve(images, *fold_whitening(W, b), patch)
    x = images[2 : 2 + patch, 3 : 3 + patch, :, 1].ravel(order="F")
    np.testing.assert_allclose(plain[:, 2, 3, 1], expit(W @ x + b), rtol=0, atol=1e-12)


def test_mean_pooling_equals_a_loop_and_drops_what_fills_no_region():
    rng = np.random.default_rng(1)
    convolved = rng.random((3, 6, 9, 2))
    pooled = mean_pool(convolved, 3)
    expected = np.empty((3, 2, 3, 2))
    for f in range(3):
        for r in range(2):
            for c in range(3):
                for n in range(2):
                    block = convolved[f, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3, n]
                    expected[f, r, c, n] = block.mean()
    np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(mean_pool(convolved, 4), mean_pool(convolved[:, :4, :8], 4))
    # The 2×2 block means of a colour photograph (rows × cols × 3; odd sides cropped).
    photo = rng.random((5, 7, 3))
    halved = mean_pool(photo[None], 2)[0]
    assert halved.shape == (2, 3, 3)
    np.testing.assert_allclose(halved[1, 2], photo[2:4, 4:6].mean(axis=(0, 1)), atol=1e-15)


@pytest.fixture
def tiny(tmp_path):
    """Features, whitening and the t10k digits of a tiny cnn experiment in ``tmp_path``."""
    resources = tmp_path / "resources" / "mnist"
    resources.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_file(f"data/{name}"), resources / name)
    experiment = resolve_config(CONFIG).experiments["tiny"]
    trajectory = trajectory_config(experiment)
    rng = np.random.default_rng(2)
    theta = autoencoder.initialize_parameters(HIDDEN, 64, rng)
    save_theta_npz(tmp_path / "theta.npz", theta, config={"fingerprint": fingerprint(trajectory)})
    zca, mean = whitening(rng, 64)
    np.savez(
        tmp_path / "patches.npz",
        data=rng.random((64, 400)),
        data_key=np.array(data_key(trajectory)),
        zca=zca,
        zca_mean=mean,
    )
    steps = {"name": "tiny", "trajectory": trajectory, "pooling": cnn.pooling_config(experiment)}
    images = steps["pooling"]["images"]
    cnn.prepare_images(
        tmp_path / "cnn_images.npz", name="tiny", images=images, resources=tmp_path / "resources"
    )
    steps["labeled"] = tmp_path / "cnn_images.npz"
    return tmp_path, steps, (theta, zca, mean)


def without_labeled(steps):
    return {key: value for key, value in steps.items() if key != "labeled"}


def pooled(path, part):
    with np.load(path, allow_pickle=False) as archive:
        return archive[part]


def run_chunk(folder, steps, k, output=None):
    output = output or folder / "pooled" / f"{k}.npz"
    output.parent.mkdir(exist_ok=True)
    files = {"theta": folder / "theta.npz", "patches": folder / "patches.npz"}
    cnn.convolve_pool(output, k=k, **files, **steps)
    return output


def test_pooled_chunks_hold_the_whitened_features_and_resume_chunk_by_chunk(tiny):
    from sparseae.data import load_mnist

    folder, steps, (theta, zca, mean) = tiny
    chunks = [run_chunk(folder, steps, k) for k in (1, 2, 3)]  # 2 + 2 + 1 features
    assert pooled(chunks[2], "train").shape == (1, 3, 3, 60)
    assert pooled(chunks[2], "test").shape == (1, 3, 3, 40)
    # Feature 3 (chunk 2) of test digit 4 (t10k index 64), pooled region (1, 2), from the raw
    # digit: each 8x8 patch whitened as the features were trained, through W1 and b1.
    W1, _, b1, _ = autoencoder.unpack(theta, 64, HIDDEN)
    digit = load_mnist(folder / "resources" / "mnist", "test")[0][:, 64].reshape(28, 28, order="F")
    values = [
        expit(W1[3] @ (zca @ (digit[r : r + 8, c : c + 8].ravel(order="F") - mean)) + b1[3])
        for r in range(7, 14)
        for c in range(14, 21)
    ]
    np.testing.assert_allclose(pooled(chunks[1], "test")[1, 1, 2, 4], np.mean(values), atol=1e-12)
    evaluation = folder / "cnn_evaluation.json"
    settings = {"lambda_": 1e-4, "max_iter": 30}
    cnn.classify_pooled(chunks, evaluation, **steps, settings=settings)
    result = read_json(evaluation, key=fingerprint(steps["trajectory"]))
    assert (result["n_train"], result["n_test"], result["pooled_features"]) == (60, 40, 45)
    assert set(result["metrics"]) == {"cnn_accuracy", "cnn_accuracy_raw"}
    assert 0 <= result["accuracy"] <= 1 and result["accuracy_raw"] > 0.3
    # A killed run lost chunk 2: the classifier refuses to start, the rerun chunk is the same.
    before = pooled(chunks[1], "train")
    chunks[1].unlink()
    with pytest.raises(ResultFileError, match=r"pooled chunk .*2\.npz does not exist"):
        cnn.read_pooled(chunks, **without_labeled(steps))
    run_chunk(folder, steps, 2)
    np.testing.assert_array_equal(pooled(chunks[1], "train"), before)


def test_a_foreign_or_renamed_pooled_chunk_is_refused_by_name(tiny):
    folder, steps, _ = tiny
    chunks = [run_chunk(folder, steps, k) for k in (1, 2, 3)]
    shutil.copy(chunks[0], chunks[1])  # renamed: chunk 1's features under chunk 2's name
    with pytest.raises(
        ForeignResultError, match=r"2\.npz belongs to pooled chunk key .* experiment"
    ):
        cnn.read_pooled(chunks, **without_labeled(steps))
    other = {**steps, "pooling": {**steps["pooling"], "pool_size": 3}}
    run_chunk(folder, other, 2, chunks[1])  # written for another pool size
    with pytest.raises(ForeignResultError, match="delete it and rerun"):
        cnn.read_pooled(chunks, **without_labeled(steps))
    with pytest.raises(ConfigError, match="chunks 1..3"):
        run_chunk(folder, steps, 4)
