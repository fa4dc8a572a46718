"""End-to-end: the stacked experiment on real MNIST t10k digits through the workflow.

The workflow is copied into a fresh folder and run as a user would, with ``snakemake --cores 2
--configfile config/stacked-t10k.yaml config/test.yaml``, where ``config/test.yaml`` points
``sources.mnist.mirrors`` at a loopback HTTP mirror of ``../shared/data`` (the real t10k files)
and shrinks the experiment: the first 1,500 t10k digits train every stage, the last 2,000 test;
layers of 40 and 30 units, 2 chunks x 20 pretraining iterations per layer, softmax 50
iterations, fine-tuning 3 chunks x 25. The chain: fetch (md5-verified over HTTP) -> digits ->
gradient check -> layer 1 chunks -> layer 2 chunks (on layer 1's features) -> softmax ->
fine-tuning chunks -> evaluation, figures -> MLflow (one run, a nested run per stage).

At this size the pretrained stack is a poor classifier (39 % measured: a 30-unit second layer
trained 40 iterations loses most of what the labels need) and fine-tuning lifts it to 87 %,
near softmax on raw pixels (88 %); the test asks for a gain of at least 20 points.

A second copy is run again and its fine-tuning job of chunk 2 is killed with SIGKILL in the
middle of its iterations; rerunning resumes at chunk 2 (nothing earlier is recomputed) and
every checkpoint and the final stack are bit-identical to the uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from http_mirror import MNIST_TEST_FILES, MirrorServer
from shared_data import SHARED_DIR, shared_file
from workflow_helpers import BIN, copy_workflow, dry_run, workflow_environment

pytestmark = [pytest.mark.full, pytest.mark.slow]

SNAKEMAKE = BIN / "snakemake"
NAME = "stacked-t10k"
TRAIN, TEST_START, HIDDEN = 1500, 8000, [40, 30]
PRE_CHUNKS, PRE_ITER, FT_CHUNKS, FT_ITER, SOFTMAX_ITER = 2, 20, 3, 25, 50
REDUCED = {
    "dataset": {"train": {"stop": TRAIN}, "test": {"start": TEST_START}},
    "layers": {"hidden_sizes": HIDDEN},
    "pretraining": {"chunks": PRE_CHUNKS, "iterations_per_chunk": PRE_ITER, "progress_every": 5},
    "softmax": {"max_iter": SOFTMAX_ITER},
    "finetuning": {"chunks": FT_CHUNKS, "iterations_per_chunk": FT_ITER, "progress_every": 1},
    "gradcheck": {"num_examples": 5, "hidden_size": 3},
}
CONFIGFILES = ["--configfile", "config/stacked-t10k.yaml", "config/test.yaml"]
COMMAND = [str(SNAKEMAKE), "--cores", "2", *CONFIGFILES]


@pytest.fixture(scope="module")
def t10k_mirror():
    for name in MNIST_TEST_FILES:
        shared_file(f"data/{name}")
    with MirrorServer(SHARED_DIR / "data") as server:
        yield server


def make_workdir(folder: Path, mirror) -> Path:
    workdir = copy_workflow(folder)
    test_config = {
        "stacked_experiments": {NAME: REDUCED},
        "sources": {"mnist": {"mirrors": [mirror.url]}},
    }
    (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(test_config), encoding="utf-8")
    return workdir


def run(workdir: Path, *extra: str, configfiles=()) -> subprocess.CompletedProcess:
    """snakemake with `extra` options; `configfiles` are merged after the test's config."""
    result = subprocess.run(
        [str(SNAKEMAKE), "--cores", "2", *extra, *CONFIGFILES, *configfiles],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1200,
        env=workflow_environment(),
    )
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, t10k_mirror) -> Path:
    """One uninterrupted run of the reduced stacked-t10k experiment; returns the folder."""
    workdir = make_workdir(tmp_path_factory.mktemp("stacked") / "work", t10k_mirror)
    started = time.perf_counter()
    result = run(workdir)
    output = result.stdout + result.stderr
    (workdir / "snakemake-output.txt").write_text(output, encoding="utf-8")
    assert result.returncode == 0, output[-6000:]
    print(f"\nstacked t10k pipeline: {time.perf_counter() - started:.1f} s")
    return workdir


def results(workdir: Path) -> Path:
    return workdir / "results" / NAME


def load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def test_data_are_the_configured_t10k_ranges(pipeline, t10k_mirror):
    from sparseae.data import load_mnist

    assert sorted(n for n, status in t10k_mirror.requests if status == 200) == sorted(
        MNIST_TEST_FILES
    )
    images, labels = load_mnist(pipeline / "resources" / "mnist", "test")
    train = load(results(pipeline) / "stacked_train.npz")
    test = load(results(pipeline) / "stacked_test.npz")
    assert np.array_equal(train["images"], images[:, :TRAIN])
    assert np.array_equal(train["labels"], labels[:TRAIN])
    assert np.array_equal(test["images"], images[:, TEST_START:])
    assert np.array_equal(test["labels"], labels[TEST_START:])


def test_each_layer_trains_on_the_previous_layers_features(pipeline):
    from sparseae.model.autoencoder import hidden_activations

    folder = results(pipeline)
    images = load(folder / "stacked_train.npz")["images"]
    theta1 = load(folder / "layer1" / "theta.npz")["theta"]
    features1 = load(folder / "layer1" / "features.npz")["features"]
    assert np.array_equal(
        features1, hidden_activations(theta1, images, visible_size=784, hidden_size=HIDDEN[0])
    )
    theta2 = load(folder / "layer2" / "theta.npz")["theta"]
    assert theta2.size == 2 * HIDDEN[0] * HIDDEN[1] + HIDDEN[0] + HIDDEN[1]
    assert load(folder / "layer2" / "features.npz")["features"].shape == (HIDDEN[1], TRAIN)
    for layer in (1, 2):
        last = load(folder / f"layer{layer}" / "chunks" / f"{PRE_CHUNKS}.npz")
        assert (
            last["theta"].tobytes()
            == load(folder / f"layer{layer}" / "theta.npz")["theta"].tobytes()
        )
        assert int(last["iteration"][-1]) == PRE_CHUNKS * PRE_ITER


def test_gradient_check_and_accuracies(pipeline):
    folder = results(pipeline)
    gradcheck = json.loads((folder / "stacked_gradcheck.json").read_text())
    assert gradcheck["passed"] and gradcheck["finetune"] < 1e-9 and gradcheck["autoencoder"] < 1e-9
    assert gradcheck["hidden_sizes"] == [3, 3] and gradcheck["num_classes"] == 10

    evaluation = json.loads((folder / "stacked_evaluation.json").read_text())
    before, after = evaluation["accuracy_before"], evaluation["accuracy_after"]
    print(
        f"\naccuracy before {before:.4f}, after {after:.4f}, raw {evaluation['accuracy_raw']:.4f}"
    )
    assert after > before + 0.20, evaluation
    assert after > 0.80 and evaluation["accuracy_raw"] > 0.80  # chance: 0.1
    assert evaluation["n_train"] == TRAIN and evaluation["n_test"] == 10_000 - TEST_START
    assert evaluation["hidden_sizes"] == HIDDEN and evaluation["input_size"] == 784
    assert evaluation["iterations"] == {
        "layer1": PRE_CHUNKS * PRE_ITER,
        "layer2": PRE_CHUNKS * PRE_ITER,
        "softmax": SOFTMAX_ITER,
        "finetune": FT_CHUNKS * FT_ITER,
        "softmax_raw": SOFTMAX_ITER,
    }
    # the accuracies are those of the saved stacks on the saved test digits
    from sparseae.model.stacked import predict

    test, stack = load(folder / "stacked_test.npz"), load(folder / "stack.npz")
    for when, key in (("before", "pretrained"), ("after", "finetuned")):
        predicted = predict(
            stack[key], test["images"], input_size=784, hidden_sizes=HIDDEN, num_classes=10
        )
        assert np.mean(predicted == test["labels"]) == evaluation[f"accuracy_{when}"]
        confusion = np.array(evaluation[f"confusion_{when}"])
        assert confusion.sum() == evaluation["n_test"]
        assert confusion.sum(axis=1).tolist() == np.bincount(test["labels"], minlength=10).tolist()
    # fine-tuning started from the pretrained stack
    first = load(folder / "finetune" / "chunks" / "1.npz")
    assert not np.array_equal(first["theta"], stack["pretrained"])
    assert (
        stack["finetuned"].tobytes()
        == load(folder / "finetune" / "chunks" / f"{FT_CHUNKS}.npz")["theta"].tobytes()
    )


def test_finished_run_has_nothing_to_do(pipeline):
    assert dry_run(pipeline, CONFIGFILES[1:]) == {}


def _planned_jobs(workdir: Path, change: dict) -> dict[str, int]:
    """Jobs `snakemake -n` plans after merging `change` into the experiment (through
    Snakemake's API in this process: one import of Snakemake for all these dry runs)."""
    extra = {"stacked_experiments": {NAME: change}}
    (workdir / "config" / "change.yaml").write_text(yaml.safe_dump(extra), encoding="utf-8")
    jobs = dry_run(workdir, [*CONFIGFILES[1:], "config/change.yaml"])
    jobs.pop("all", None)
    return jobs


@pytest.mark.parametrize(
    "change, expected",
    [
        # another test range: only the test digits, the evaluation and its record
        (
            {"dataset": {"test": {"start": 9000}}},
            {"prepare_stacked_data", "evaluate_stacked", "write_stacked_config", "log_stacked"},
        ),
        # one more fine-tuning chunk continues the run: chunk 4 only, then the results
        (
            {"finetuning": {"chunks": FT_CHUNKS + 1}},
            {
                "finetune_chunk",
                "finalize_stacked",
                "evaluate_stacked",
                "plot_stacked",
                "write_stacked_config",
                "log_stacked",
            },
        ),  # fmt: skip
        # softmax λ: softmax, its check, fine-tuning and what follows; no pretraining
        (
            {"softmax": {"lambda_": 2e-4}},
            {
                "check_stacked_gradient",
                "train_stacked_softmax",
                "write_finetune_trajectory",
                "finetune_chunk",
                "finalize_stacked",
                "evaluate_stacked",
                "plot_stacked",
                "write_stacked_config",
                "log_stacked",
            },
        ),  # fmt: skip
        # a gradient-check setting: the check only (it gates fine-tuning, not its numbers)
        (
            {"gradcheck": {"bound": 1e-7}},
            {"check_stacked_gradient", "write_stacked_config", "log_stacked"},
        ),
        # the check and fine-tuning's chunking at once: both, although the check is an
        # ancient() input of fine-tuning (its trajectory file carries the change)
        (
            {"gradcheck": {"bound": 1e-7}, "finetuning": {"iterations_per_chunk": FT_ITER + 5}},
            {
                "check_stacked_gradient",
                "write_finetune_trajectory",
                "finetune_chunk",
                "finalize_stacked",
                "evaluate_stacked",
                "plot_stacked",
                "write_stacked_config",
                "log_stacked",
            },
        ),  # fmt: skip
        # progress lines and resources: nothing is retrained (the config record is rewritten)
        ({"finetuning": {"progress_every": 7}}, {"write_stacked_config", "log_stacked"}),
        ({"resources": {"train": {"mem_mb": 3000}}}, {"write_stacked_config", "log_stacked"}),
    ],
)
def test_a_change_reruns_exactly_what_it_affects(pipeline, change, expected):
    planned = _planned_jobs(pipeline, change)
    assert set(planned) == expected, planned
    if "finetune_chunk" in planned:
        # a new trajectory refits every chunk; more chunks of the same one add only chunk 4
        refit = "write_finetune_trajectory" in planned
        assert planned["finetune_chunk"] == (FT_CHUNKS if refit else 1), planned


def test_mlflow_has_one_run_with_a_nested_run_per_stage(pipeline):
    from mlflow.tracking import MlflowClient

    folder = results(pipeline)
    record = json.loads((folder / "stacked_mlflow.json").read_text())
    evaluation = json.loads((folder / "stacked_evaluation.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(NAME)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 5
    parent = client.get_run(record["run_id"])
    for key in ("accuracy_before", "accuracy_after", "accuracy_raw", "train_accuracy_after"):
        assert parent.data.metrics[key] == evaluation[key]
    gradcheck = json.loads((folder / "stacked_gradcheck.json").read_text())
    assert parent.data.metrics["gradcheck_finetune"] == gradcheck["finetune"]
    assert parent.data.metrics["seconds_finetune"] == evaluation["seconds"]["finetune"]
    assert parent.data.params["evaluation.n_test"] == str(evaluation["n_test"])
    assert parent.data.params["layers.hidden_sizes"] == json.dumps(HIDDEN)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"confusion_before.png", "filters_after.png", "stacked_evaluation.json"} <= artifacts
    # One manifest of sha256 and size per file, confirmed by one tag (no tag per file).
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(client.download_artifacts(parent.info.run_id, "manifest.json", tmp))
        text = manifest.read_bytes()
    assert hashlib.sha256(text).hexdigest() == parent.data.tags["sparseae.manifest_sha256"]
    files = json.loads(text)["files"]
    assert (
        files["stack.npz"]["sha256"]
        == hashlib.sha256((folder / "stack.npz").read_bytes()).hexdigest()
    )
    assert not [tag for tag in parent.data.tags if tag.startswith("sparseae.sha256.")]
    children = {
        r.data.tags["sparseae.stage"]: r for r in runs if r.info.run_id != parent.info.run_id
    }
    assert set(children) == {"layer1", "layer2", "softmax", "finetune"}
    for stage, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        history = client.get_metric_history(child.info.run_id, "cost")
        assert len(history) == evaluation["iterations"][stage], stage
    finetune = sorted(
        client.get_metric_history(children["finetune"].info.run_id, "cost"), key=lambda m: m.step
    )
    assert [m.step for m in finetune] == list(range(1, FT_CHUNKS * FT_ITER + 1))
    assert finetune[-1].value < finetune[0].value

    # logging again adds nothing (idempotent)
    from sparseae.tracking.logger import log_stacked

    stages = {
        s: sorted(map(str, (folder / s / "chunks").glob("*.npz")))
        for s in ("layer1", "layer2", "finetune")
    }
    stages["softmax"] = [str(folder / "softmax.npz")]
    again = log_stacked(
        folder,
        experiment_name=NAME,
        tracking_uri=f"sqlite:///{pipeline / 'mlflow.db'}",
        stages=stages,
        output=pipeline / "again.json",
    )
    assert again == parent.info.run_id
    logged = json.loads((pipeline / "again.json").read_text())["logged"]
    assert all(sum(counts.values()) == 0 for counts in logged.values()), logged


def test_report_has_the_stacked_figures(pipeline):
    result = run(pipeline, "--report", "report.zip")  # options before --configfile
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with zipfile.ZipFile(pipeline / "report.zip") as archive:
        names = {Path(n).name for n in archive.namelist()}
    expected = {"confusion_before.png", "confusion_after.png", "filters_before.png"}
    assert expected | {"filters_after.png", "stacked_cost_curves.png"} <= names, names


# ------------------------------------------------------------------ kill -9 and resume


def _finetune_jobs(process: subprocess.Popen) -> list[int]:
    from tiny_pipeline import descendants

    found = []
    for pid in descendants(process.pid):
        try:
            if b"finetune_chunk" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def finetuning_undone(pipeline: Path, folder: Path) -> Path:
    """A copy of the finished run without its fine-tuning chunks: the run below redoes only
    fine-tuning and what follows it, not the pretraining before it (which the asserts below
    check it keeps). The store, its marker and the fine-tuning logs stay behind: a store
    refuses a copied project, and an old chunk log would look like progress of the new one."""
    shutil.copytree(pipeline, folder, symlinks=True)  # copy2 keeps the mtimes Snakemake reads
    for path in (folder / "mlflow.db", folder / "mlartifacts", folder / "results" / "_tracking"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(results(folder) / "finetune" / "chunks")
    for log in (folder / "logs" / NAME).glob("finetune_chunk-*.log"):
        log.unlink()
    return folder


def test_kill9_during_finetuning_resumes_bit_identical(pipeline, tmp_path):
    workdir = finetuning_undone(pipeline, tmp_path / "work")
    process = subprocess.Popen(
        COMMAND,
        cwd=workdir,
        env=workflow_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = workdir / "logs" / NAME / "finetune_chunk-2.log"
    try:
        deadline = time.monotonic() + 900
        pids: list[int] = []
        while True:
            assert time.monotonic() < deadline, "fine-tuning chunk 2 made no progress"
            assert process.poll() is None, "snakemake ended before chunk 2 made progress"
            if log.exists():
                # Found as soon as chunk 2 starts (the chunks run one after the other), so the
                # kill below is immediate: a chunk of 25 iterations can take 2 s on an idle
                # machine, less than a walk over /proc under load.
                pids = pids or _finetune_jobs(process)
                if pids and log.read_text().count("\n") >= 2 + 3:  # 2 header lines
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    break
            time.sleep(0.005)
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0, "snakemake must report the killed job"
    folder, expected = results(workdir), results(pipeline)
    chunks = folder / "finetune" / "chunks"
    assert (chunks / "1.npz").exists() and not (chunks / "2.npz").exists()
    kept = [chunks / "1.npz", folder / "softmax.npz", folder / "layer2" / "theta.npz"]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in kept}

    result = run(workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "fine-tuning the whole stack, chunk 2" in output
    assert "fine-tuning the whole stack, chunk 1" not in output
    assert "pretraining layer" not in output
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in kept} == before
    for k in range(1, FT_CHUNKS + 1):
        mine, theirs = (
            load(chunks / f"{k}.npz"),
            load(expected / "finetune" / "chunks" / f"{k}.npz"),
        )
        for key in ("theta", "iteration", "cost", "grad_norm", "fun_evals"):
            assert mine[key].tobytes() == theirs[key].tobytes(), (k, key)
    stack, reference = load(folder / "stack.npz"), load(expected / "stack.npz")
    for key in ("pretrained", "finetuned"):
        assert stack[key].tobytes() == reference[key].tobytes(), key
    mine = json.loads((folder / "stacked_evaluation.json").read_text())
    theirs = json.loads((expected / "stacked_evaluation.json").read_text())
    assert mine["accuracy_after"] == theirs["accuracy_after"]
