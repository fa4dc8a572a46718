"""Theta files: ``.npz`` (ours) and MATLAB ``.mat`` in the exercise's layout; atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from sparseae.io import (
    atomic_write,
    load_theta_mat,
    load_theta_npz,
    save_theta_mat,
    save_theta_npz,
)
from sparseae.model import autoencoder as ae

pytestmark = pytest.mark.fast


@pytest.fixture
def opttheta(reference):
    """Parameters trained by minFunc under Octave (shared/reference/sae_train_small.npz)."""
    ref = reference("sae_train_small")
    return ref["opttheta"].reshape(-1), int(ref["visible"]), int(ref["hidden"])


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_npz_round_trip_with_config(tmp_path, opttheta):
    theta, v, h = opttheta
    config = {"name": "natural", "model": {"visible_size": v, "hidden_size": h, "rho": 0.01}}
    path = tmp_path / "theta.npz"
    save_theta_npz(path, theta, config=config)
    loaded, loaded_config = load_theta_npz(path)
    np.testing.assert_array_equal(loaded, theta)
    assert loaded.dtype == np.float64 and loaded_config == config
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["config", "theta"]
        assert json.loads(str(archive["config"])) == config
    assert _leftovers(tmp_path) == []


def test_npz_config_may_be_absent(tmp_path):
    theta = np.linspace(-1, 1, 13)
    save_theta_npz(tmp_path / "b.npz", theta)
    assert load_theta_npz(tmp_path / "b.npz")[1] is None
    np.savez(tmp_path / "c.npz", theta=theta)  # a bare file without config
    assert load_theta_npz(tmp_path / "c.npz")[1] is None


def test_npz_errors_name_file_and_key(tmp_path):
    np.savez(tmp_path / "nokey.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="nokey.npz lacks key 'theta'"):
        load_theta_npz(tmp_path / "nokey.npz")
    np.savez(tmp_path / "obj.npz", theta=np.zeros(3), config=np.array([{}], dtype=object))
    with pytest.raises(ValueError, match="obj.npz"):
        load_theta_npz(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="junk.npz"):
        load_theta_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_theta_npz(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="non-finite"):
        save_theta_npz(tmp_path / "nan.npz", np.array([1.0, np.nan]))
    assert not (tmp_path / "nan.npz").exists()


def test_mat_written_like_matlab_is_read(tmp_path, opttheta):
    theta, v, h = opttheta
    # What MATLAB's `save opttheta.mat opttheta visibleSize hiddenSize` produces after train.m:
    # an n × 1 double column and 1 × 1 doubles.
    path = tmp_path / "opttheta.mat"
    scipy.io.savemat(
        path,
        {"opttheta": theta.reshape(-1, 1), "visibleSize": float(v), "hiddenSize": float(h)},
    )
    loaded, info = load_theta_mat(path)
    np.testing.assert_array_equal(loaded, theta)
    assert info["visible_size"] == v and info["hidden_size"] == h
    # the original column-major reshape gives our W1
    W1 = loaded[: h * v].reshape(h, v, order="F")
    np.testing.assert_array_equal(W1, ae.unpack(theta, v, h)[0])


def test_mat_row_vector_and_bare_variable(tmp_path):
    theta = np.arange(1.0, 21.0)
    scipy.io.savemat(tmp_path / "row.mat", {"opttheta": theta.reshape(1, -1)})
    loaded, info = load_theta_mat(tmp_path / "row.mat")
    np.testing.assert_array_equal(loaded, theta)
    assert info["visible_size"] is None and info["variables"] == ["opttheta"]


def test_mat_we_write_has_the_original_layout(tmp_path, opttheta):
    theta, v, h = opttheta
    path = tmp_path / "out" / "opttheta.mat"
    save_theta_mat(path, theta, visible_size=v, hidden_size=h)
    raw = scipy.io.loadmat(path)
    assert raw["opttheta"].shape == (theta.size, 1) and raw["opttheta"].dtype == np.float64
    np.testing.assert_array_equal(raw["opttheta"][:, 0], theta)
    assert raw["visibleSize"].item() == v and raw["hiddenSize"].item() == h
    loaded, info = load_theta_mat(path)
    np.testing.assert_array_equal(loaded, theta)
    assert (info["visible_size"], info["hidden_size"]) == (v, h)
    assert _leftovers(path.parent) == []


def test_mat_errors(tmp_path):
    scipy.io.savemat(tmp_path / "other.mat", {"IMAGES": np.zeros((4, 4, 2))})
    with pytest.raises(ValueError, match="no variable 'opttheta' \\(variables: \\['IMAGES'\\]\\)"):
        load_theta_mat(tmp_path / "other.mat")
    scipy.io.savemat(tmp_path / "mismatch.mat", {"opttheta": np.zeros((10, 1)), "visibleSize": 8,
                                                 "hiddenSize": 5})  # fmt: skip
    with pytest.raises(ValueError, match="need 93"):
        load_theta_mat(tmp_path / "mismatch.mat")
    with pytest.raises(ValueError, match="expected 93"):
        save_theta_mat(tmp_path / "bad.mat", np.zeros(10), visible_size=8, hidden_size=5)
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="junk.mat"):
        load_theta_mat(tmp_path / "junk.mat")
    with pytest.raises(FileNotFoundError):
        load_theta_mat(tmp_path / "absent.mat")


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "theta.npz"
    save_theta_npz(path, np.ones(5))
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "x.txt") as handle:
        handle.write("partial")
        raise RuntimeError("crash mid-write")
    assert not (tmp_path / "x.txt").exists()
    with pytest.raises(ValueError):
        save_theta_npz(path, np.ones((2, 3)))
    np.testing.assert_array_equal(load_theta_npz(path)[0], np.ones(5))
    assert _leftovers(tmp_path) == []
