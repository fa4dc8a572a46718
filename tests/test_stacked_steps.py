"""The stacked pipeline's steps called directly (no Snakemake) on small real-shaped data."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from workflow_helpers import REPO

from sparseae import stacked_pipeline as steps
from sparseae.config import ConfigError, resolve_config
from sparseae.stacked_config import gradcheck_settings, stage_trajectory
from sparseae.train import load_checkpoint

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def experiment():
    config = {
        "run": ["tiny"],
        "stacked_experiments": {
            "tiny": {
                "dataset": {"train": {"split": "test", "stop": 60}, "test": {"split": "train"}},
                "layers": {"hidden_sizes": [6, 4]},
                "pretraining": {"chunks": 2, "iterations_per_chunk": 3},
                "finetuning": {"chunks": 2, "iterations_per_chunk": 3},
                "softmax": {"max_iter": 5},
                "gradcheck": {"num_examples": 4, "hidden_size": 2},
            }
        },
    }
    return resolve_config(config, SCHEMA)["stacked_experiments"]["tiny"]


@pytest.fixture
def train_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "stacked_train.npz"
    np.savez(path, images=rng.random((784, 60)), labels=rng.integers(0, 10, 60))
    return path


def test_layer_chunks_continue_and_refuse_another_configuration(experiment, train_file, tmp_path):
    trajectory = stage_trajectory(experiment, "layer1")
    first, second = tmp_path / "1.npz", tmp_path / "2.npz"
    steps.train_layer_chunk(train_file, None, first, name="tiny", trajectory=trajectory, chunk=1)
    steps.train_layer_chunk(train_file, first, second, name="tiny", trajectory=trajectory, chunk=2)
    _, records, meta = load_checkpoint(second)
    assert [r["iteration"] for r in records] == [4, 5, 6]
    assert meta["stage"] == "layer1" and meta["trajectory"] == trajectory

    other = copy.deepcopy(experiment)
    other["layers"]["rho"] = 0.2
    with pytest.raises(ConfigError) as info:
        steps.train_layer_chunk(
            train_file, first, tmp_path / "x.npz", name="tiny",
            trajectory=stage_trajectory(other, "layer1"), chunk=2,
        )  # fmt: skip
    message = str(info.value)
    assert "layers.layer1.rho: 0.1 != 0.2" in message and "Delete" in message
    assert not (tmp_path / "x.npz").exists()


def test_failed_gradient_check_writes_nothing(experiment, train_file, tmp_path):
    settings = gradcheck_settings(experiment)
    passed = steps.check_stacked_gradient(train_file, tmp_path / "ok.json", "tiny", settings)
    assert passed["passed"] and passed["finetune"] < 1e-9 and passed["autoencoder"] < 1e-9
    settings["gradcheck"]["bound"] = 1e-30
    with pytest.raises(ConfigError, match="gradient check FAILED for stacked experiment 'tiny'"):
        steps.check_stacked_gradient(train_file, tmp_path / "bad.json", "tiny", settings)
    assert not (tmp_path / "bad.json").exists()


def test_data_ranges_are_slices_of_the_split(tmp_path, shared_dir):
    from sparseae.datasets import load_mnist

    images = {"split": "test", "start": 9990, "stop": None}
    shape = steps.prepare_stacked_data(tmp_path / "t.npz", "mnist", images, shared_dir / "data")
    assert shape == (784, 10)
    expected, labels = load_mnist(shared_dir / "data", "test")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as archive:
        assert np.array_equal(archive["images"], expected[:, 9990:])
        assert np.array_equal(archive["labels"], labels[9990:])
