"""A tiny convolution-and-pooling experiment through the real workflow: features on 8x8
patches, convolved over t10k digits (from a loopback mirror of ../shared/data) in three pooled
chunks, softmax on the pooled features; then what a change of a `cnn` setting reruns."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from http_mirror import MNIST_TEST_FILES, MirrorServer
from shared_data import SHARED_DIR, shared_file
from tiny_pipeline import TINY_CNN as CONFIG
from tiny_pipeline import run
from workflow_helpers import copy_workflow, dry_run

pytestmark = [pytest.mark.full, pytest.mark.slow]

RECORD = {"write_config": 1, "log_mlflow": 1, "all": 1}  # config.json and MLflow follow any key


def write_config(workdir, config, url):
    text = yaml.safe_dump({**config, "sources": {"mnist": {"mirrors": [url]}}})
    (workdir / "config" / "test.yaml").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    for name in MNIST_TEST_FILES:
        shared_file(f"data/{name}")
    workdir = copy_workflow(tmp_path_factory.mktemp("cnn") / "work")
    with MirrorServer(SHARED_DIR / "data") as mirror:
        write_config(workdir, CONFIG, mirror.url)
        result = run(workdir)
        yield workdir, mirror.url, result.stdout + result.stderr


def planned(workdir, url, path=None, value=None):
    config = copy.deepcopy(CONFIG)
    if path is not None:
        *parents, leaf = path.split(".")
        node = config["experiments"]["tiny"]
        for part in parents:
            node = node[part]
        node[leaf] = value
    write_config(workdir, config, url)
    return dry_run(workdir, ["config/test.yaml"])


def test_the_experiment_classifies_pooled_features_and_logs_them(finished):
    workdir, _, output = finished
    results = workdir / "results" / "tiny"
    assert sorted(p.name for p in (results / "pooled").iterdir()) == ["1.npz", "2.npz", "3.npz"]
    evaluation = json.loads((results / "cnn_evaluation.json").read_text())
    sizes = ("n_train", "n_test", "features", "pooled_rows", "pooled_cols", "pooled_features")
    assert [evaluation[k] for k in sizes] == [60, 40, 5, 3, 3, 45]
    assert evaluation["metrics"] == {
        "cnn_accuracy": evaluation["accuracy"],
        "cnn_accuracy_raw": evaluation["accuracy_raw"],
    }
    assert evaluation["accuracy_raw"] > 0.5  # 10 classes, 60 training digits
    assert set(evaluation["seconds"]) == {"convolve_pool", "softmax", "softmax_raw"}
    assert "tiny: pooled chunk 3/3: features 4..4" in output
    log = (workdir / "logs" / "tiny" / "classify_pooled.log").read_text()
    assert "on 45 pooled features" in log


def test_a_finished_run_has_nothing_to_do(finished):
    workdir, url, _ = finished
    assert planned(workdir, url) == {}


def test_a_pooling_setting_reruns_the_chunks_and_the_classifier_only(finished):
    workdir, url, _ = finished
    expected = {"convolve_pool": 3, "classify_pooled": 1, **RECORD}
    assert planned(workdir, url, "cnn.pool_size", 3) == expected
    expected = {"convolve_pool": 2, "classify_pooled": 1, **RECORD}
    assert planned(workdir, url, "cnn.features_per_chunk", 3) == expected
    expected = {"classify_pooled": 1, **RECORD}
    assert planned(workdir, url, "cnn.softmax.lambda_", 1e-3) == expected
