"""The stacked pipeline's steps called directly (no Snakemake) on small real-shaped data."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from workflow_helpers import REPO

from sparseae.config import ConfigError, resolve_config
from sparseae.config.stacked import gradcheck_settings, stage_trajectory
from sparseae.model.train import load_checkpoint
from sparseae.pipeline import stacked as steps
from sparseae.pipeline.experiment import ForeignResultError, ResultFileError

pytestmark = pytest.mark.fast

SCHEMA = REPO / "src" / "sparseae" / "schemas" / "config.schema.yaml"


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
    # the optimizer's stop, as the single-layer chunks record it: 3 iterations were the budget
    assert meta["stop"]["reason"] == "budget" and meta["stop"]["iterations"] == 3

    other = copy.deepcopy(experiment)
    other["layers"]["rho"] = 0.2
    with pytest.raises(ForeignResultError) as info:
        steps.train_layer_chunk(
            train_file, first, tmp_path / "x.npz", name="tiny",
            trajectory=stage_trajectory(other, "layer1"), chunk=2,
        )  # fmt: skip
    message = str(info.value)
    assert "layers.layer1.rho: 0.1 != 0.2" in message and "stage layer1" in message
    assert f"delete it (or {tmp_path}/)" in message
    assert not (tmp_path / "x.npz").exists()
    # a chunk renamed into another place is refused like a single experiment's
    with pytest.raises(ForeignResultError, match="holds chunk 2, not chunk 1"):
        steps.train_layer_chunk(
            train_file, second, tmp_path / "y.npz", name="tiny", trajectory=trajectory, chunk=2
        )


def test_stacked_finalize_refuses_a_foreign_chunk(experiment, train_file, tmp_path):
    trajectory = stage_trajectory(experiment, "layer1")
    first = tmp_path / "1.npz"
    steps.train_layer_chunk(train_file, None, first, name="tiny", trajectory=trajectory, chunk=1)
    theta = steps.finalize_layer(
        [first], train_file, tmp_path / "theta.npz", tmp_path / "features.npz", name="tiny",
        trajectory=trajectory,
    )  # fmt: skip
    np.testing.assert_array_equal(theta, load_checkpoint(first)[0])
    other = copy.deepcopy(experiment)
    other["layers"]["lambda_"] = 1e-2
    with pytest.raises(ForeignResultError, match="layers.layer1.lambda_"):
        steps.finalize_layer(
            [first], train_file, tmp_path / "t.npz", tmp_path / "f.npz", name="tiny",
            trajectory=stage_trajectory(other, "layer1"),
        )  # fmt: skip
    assert not (tmp_path / "t.npz").exists()


def test_failed_gradient_check_writes_nothing(experiment, train_file, tmp_path):
    settings = gradcheck_settings(experiment)
    passed = steps.check_stacked_gradient(train_file, tmp_path / "ok.json", "tiny", settings)
    assert passed["passed"] and passed["finetune"] < 1e-9 and passed["autoencoder"] < 1e-9
    settings["gradcheck"]["bound"] = 1e-30
    with pytest.raises(ConfigError, match="gradient check FAILED for stacked experiment 'tiny'"):
        steps.check_stacked_gradient(train_file, tmp_path / "bad.json", "tiny", settings)
    assert not (tmp_path / "bad.json").exists()


def test_data_ranges_are_slices_of_the_split(tmp_path, shared_dir):
    from sparseae.data import load_mnist

    images = {"split": "test", "start": 9990, "stop": None}
    shape = steps.prepare_stacked_data(tmp_path / "t.npz", "mnist", images, shared_dir / "data")
    assert shape == (784, 10)
    expected, labels = load_mnist(shared_dir / "data", "test")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as archive:
        assert np.array_equal(archive["images"], expected[:, 9990:])
        assert np.array_equal(archive["labels"], labels[9990:])


def test_damaged_checkpoint_is_one_message_naming_it(experiment, train_file, tmp_path):
    trajectory = stage_trajectory(experiment, "layer1")
    first = tmp_path / "1.npz"
    steps.train_layer_chunk(train_file, None, first, name="tiny", trajectory=trajectory, chunk=1)
    first.write_bytes(first.read_bytes()[:200])  # truncated, as by a full disk
    with pytest.raises(ResultFileError, match=re.escape(f"delete {first} and rerun")) as info:
        steps.train_layer_chunk(
            train_file, first, tmp_path / "2.npz", name="tiny", trajectory=trajectory, chunk=2
        )
    assert "\n" not in str(info.value) and not (tmp_path / "2.npz").exists()
    # features of the wrong size: layer 2 refuses them, naming the file
    bad = tmp_path / "features.npz"
    np.savez(bad, features=np.zeros((5, 60)))
    with pytest.raises(ResultFileError, match=re.escape(f"{bad} has 5 rows, layer 2 needs 6")):
        steps.train_layer_chunk(
            bad, None, tmp_path / "l2.npz", name="tiny",
            trajectory=stage_trajectory(experiment, "layer2"), chunk=1,
        )  # fmt: skip


def test_finetune_trajectory_file_changes_exactly_with_the_trajectory(experiment, tmp_path):
    import json

    written = steps.write_finetune_trajectory(
        tmp_path / "t.json", name="tiny", trajectory=stage_trajectory(experiment, "finetune")
    )
    assert json.loads((tmp_path / "t.json").read_text()) == written
    other = copy.deepcopy(experiment)
    other["gradcheck"]["bound"] = 1e-3  # not part of fine-tuning's numbers
    other["finetuning"]["progress_every"] = 3
    assert stage_trajectory(other, "finetune") == written["trajectory"]
    other["finetuning"]["iterations_per_chunk"] = 4
    again = steps.write_finetune_trajectory(
        tmp_path / "u.json", name="tiny", trajectory=stage_trajectory(other, "finetune")
    )
    assert again["fingerprint"] != written["fingerprint"]
