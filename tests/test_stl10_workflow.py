"""The workflow's fetch rule on source stl10: a small archive in the real format
(tests/stl10_archive.py) on the loopback HTTP mirror, accepted through the config's
``sources.stl10.md5`` and extracted member by member (only those of the split); and UFLDL's
own ``.mat`` files read instead, their contents deciding what reruns."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import numpy as np
import pytest
import scipy.io
import yaml
from stl10_archive import make_archive, write_ufldl_mats
from workflow_helpers import BIN, copy_workflow, dry_run, workflow_environment

pytestmark = pytest.mark.full


def test_fetch_rule_extracts_the_split_with_the_configured_checksums(http_mirror, tmp_path):
    archive = make_archive(http_mirror.root)
    workdir = copy_workflow(tmp_path / "work")
    (workdir / "stl10.yaml").write_text(yaml.safe_dump(archive.config(http_mirror.url)))
    target = "resources/stl10/fetched-test.json"
    command = [str(BIN / "snakemake"), target, "--cores", "1", "--configfile", "stl10.yaml"]
    result = subprocess.run(
        command, cwd=workdir, env=workflow_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    folder = workdir / "resources" / "stl10"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["stl10_binary.tar.gz", "test_X.bin", "test_y.bin", "fetched-test.json"])
    for name in ("test_X.bin", "test_y.bin"):
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == archive.md5[name]
    assert json.loads((folder / "fetched-test.json").read_text())["source"] == "stl10"
    assert http_mirror.requests == [("stl10_binary.tar.gz", 200)]


# A linear decoder on 8x8x3 patches of the archive's unlabeled images, its 4 features convolved
# over its airplane, car, cat and dog images (resized to 32x32: 25x25 positions, 5x5 pools).
TINY_STL10 = {
    "run": ["colour"],
    "experiments": {
        "colour": {
            "dataset": {"source": "stl10", "split": "unlabeled", "num_images": 5},
            "patches": {"size": 8, "channels": 3, "count": 400, "normalize": False},
            "model": {"visible_size": 192, "hidden_size": 4, "output": "linear", "rho": 0.05},
            "training": {"chunks": 1, "iterations_per_chunk": 5},
            "gradcheck": {"num_examples": 5, "hidden_size": 3},
            "cnn": {
                "images": {
                    "source": "stl10",
                    "size": 32,
                    "train": {"start": 0, "stop": 12},  # 3 of each class
                    "test": {"start": 0, "stop": 8},  # 2 of each class
                },
                "pool_size": 5,
                "features_per_chunk": 2,
                "softmax": {"max_iter": 20},
            },
        }
    },
}


def test_linear_decoder_and_convolution_on_stl10_end_to_end(http_mirror, tmp_path):
    archive = make_archive(http_mirror.root)
    workdir = copy_workflow(tmp_path / "work")
    config = {**TINY_STL10, **archive.config(http_mirror.url)}
    config["experiments"]["colour"]["patches"]["whitening"] = {"method": "zca-mean-patch"}
    (workdir / "stl10.yaml").write_text(yaml.safe_dump(config))
    # The evaluation alone: the MLflow store and the figures take most of a whole run's time.
    target = "results/colour/cnn_evaluation.json"
    command = [str(BIN / "snakemake"), target, "--cores", "2", "--configfile", "stl10.yaml"]
    result = subprocess.run(
        command, cwd=workdir, env=workflow_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    results = workdir / "results" / "colour"
    with np.load(results / "patches.npz", allow_pickle=False) as patches:
        assert patches["data"].shape == (192, 400) and patches["zca"].shape == (192, 192)
    evaluation = json.loads((results / "cnn_evaluation.json").read_text())
    sizes = ("n_train", "n_test", "features", "pooled_rows", "pooled_cols", "pooled_features")
    assert [evaluation[k] for k in sizes] == [12, 8, 4, 5, 5, 100]
    for key in ("accuracy", "accuracy_raw"):  # 8 test images: a whole number of them right
        assert evaluation[key] * 8 == pytest.approx(round(evaluation[key] * 8))
        assert evaluation["metrics"][f"cnn_{key}"] == evaluation[key]
    fetched = sorted(p.name for p in (workdir / "resources" / "stl10").glob("fetched-*.json"))
    assert fetched == ["fetched-test.json", "fetched-train.json", "fetched-unlabeled.json"]
    # The archive is downloaded once, though the fetch jobs of three splits may run at once.
    assert http_mirror.requests == [("stl10_binary.tar.gz", 200)]
    assert dry_run(workdir, ["stl10.yaml"], target) == {}


def test_ufldl_mat_files_are_read_not_fetched_and_rerun_on_their_contents_only(tmp_path):
    workdir = copy_workflow(tmp_path / "work")
    write_ufldl_mats(workdir)
    paths = {part: str(workdir / f"stl{part.title()}Subset.mat") for part in ("train", "test")}
    config = json.loads(json.dumps(TINY_STL10))
    colour = config["experiments"]["colour"]
    colour["dataset"] = {"source": "stl10", "path": str(workdir / "stlSampledPatches.mat")}
    colour["patches"]["count"] = 300
    images = {part: {"path": paths[part], "start": 0, "stop": 8} for part in paths}
    colour["cnn"].update(images={"source": "stl10", "size": 64, **images}, pool_size=19)
    (workdir / "mat.yaml").write_text(yaml.safe_dump(config))
    planned = dry_run(workdir, ["mat.yaml"], "results/colour/cnn_evaluation.json")
    assert "fetch" not in planned  # nothing to download: the .mat files are read
    assert (planned["prepare_images"], planned["convolve_pool"], planned["sample_patches"]) == (
        1,
        2,
        1,
    )

    read = ["results/colour/patches.npz", "results/colour/cnn_images.npz"]
    command = [str(BIN / "snakemake"), *read, "--cores", "2", "--configfile", "mat.yaml"]
    result = subprocess.run(
        command, cwd=workdir, env=workflow_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for path in (*paths.values(), colour["dataset"]["path"]):
        os.utime(path)  # a newer time stamp, the same contents: nothing to redo
    assert dry_run(workdir, ["mat.yaml"], *read) == {}
    test = {k: v for k, v in scipy.io.loadmat(paths["test"]).items() if k[0] != "_"}
    scipy.io.savemat(paths["test"], {**test, "testImages": 1 - test["testImages"]})
    assert dry_run(workdir, ["mat.yaml"], *read) == {"prepare_images": 1}
    patches = scipy.io.loadmat(colour["dataset"]["path"])["patches"]
    scipy.io.savemat(colour["dataset"]["path"], {"patches": patches[:, ::-1]})
    assert dry_run(workdir, ["mat.yaml"], *read) == {"prepare_images": 1, "sample_patches": 1}
