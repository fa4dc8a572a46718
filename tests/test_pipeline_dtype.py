"""End-to-end: ``training.dtype: float32`` through the workflow, against float64.

The tiny config of ``test_pipeline.py`` (2 chunks of 200 iterations here) is run through the
workflow with ``training.dtype: float32``, and the same experiment in float64 through the
same step functions the rules call (in-process: the comparison needs the numbers, not a
second workflow; test_pipeline.py runs the float64 workflow and checks its logged dtype):
patches are stored in float32 (the float64 patches rounded), the gradient check still passes
its 1e-9 bound (it runs in float64), training ends within 1e-3 relative of the float64 run,
the checkpoints and theta stay float64, MLflow holds the dtype as a param, and switching the
dtype of a finished run makes Snakemake redo the patches and every chunk.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from tiny_pipeline import CHUNKS, load, make_workdir, run
from workflow_helpers import dry_run

pytestmark = [pytest.mark.full, pytest.mark.slow]

# Long enough to end near a minimum: float32 and float64 follow different trajectories
# (measured on these 2,000 patches: 5e-3 apart at iteration 80, while the cost still falls
# steeply, 1.2e-4 at iteration 400, as far as float64 runs whose start differs by 1e-12).
PER_CHUNK = 200
TRAINING = {"chunks": CHUNKS, "iterations_per_chunk": PER_CHUNK, "progress_every": 50}


def float64_steps(workdir, folder) -> dict:
    """The float32 workdir's experiment in float64, through the rules' step functions:
    ``folder`` gets its patches.npz, chunks/, theta.npz and summary.json."""
    from snakemake.utils import update_config

    from sparseae.config import resolve_config, trajectory_config
    from sparseae.pipeline import experiment as steps

    # The config as Snakemake merges it: the test's file over the workflow's defaults.
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((workdir / "config" / "test.yaml").read_text()))
    config["experiments"]["natural"]["training"]["dtype"] = "float64"
    exp = resolve_config(config)["experiments"]["natural"]
    trajectory = trajectory_config(exp)
    patches, resources = folder / "patches.npz", workdir / "resources"  # fetched by the run
    steps.sample_patches(patches, name="natural", data=steps.data_config(exp), resources=resources)
    chunks = [folder / "chunks" / f"{k}.npz" for k in range(1, CHUNKS + 1)]
    for k, path in enumerate(chunks, start=1):
        previous = chunks[k - 2] if k > 1 else None
        steps.train_chunk(
            path, k=k, previous=previous, patches=patches, name="natural", trajectory=trajectory
        )
    steps.finalize(
        chunks,
        patches,
        theta=folder / "theta.npz",
        history=folder / "history.tsv",
        summary=folder / "summary.json",
        name="natural",
        trajectory=trajectory,
        resources=resources,
    )
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The tiny experiment run by the workflow in float32, and by the step functions in
    float64 (their results folders)."""
    extra = {"training": {**TRAINING, "dtype": "float32"}}
    workdir = make_workdir(tmp_path_factory.mktemp("float32") / "work", extra)
    run(workdir)
    res64 = float64_steps(workdir, tmp_path_factory.mktemp("float64"))
    return {"float64": res64, "float32": workdir / "results" / "natural", "workdir": workdir}


def test_float32_patches_train_to_the_float64_cost(pair):
    res64, res32 = pair["float64"], pair["float32"]
    p64, p32 = load(res64 / "patches.npz")["data"], load(res32 / "patches.npz")["data"]
    assert p64.dtype == np.float64 and p32.dtype == np.float32
    np.testing.assert_array_equal(p32, p64.astype(np.float32))  # same patches, rounded

    gradcheck = json.loads((res32 / "gradcheck.json").read_text())
    assert gradcheck["passed"] is True and gradcheck["autoencoder"] < 1e-9

    for k in range(1, CHUNKS + 1):
        chunk = load(res32 / "chunks" / f"{k}.npz")
        assert chunk["theta"].dtype == np.float64
        meta = json.loads(str(chunk["meta"][()]))
        assert meta["trajectory"]["training"]["dtype"] == "float32"
        assert meta["stop"]["reason"] == "budget" and meta["stop"]["iterations"] == PER_CHUNK
    theta64, theta32 = load(res64 / "theta.npz")["theta"], load(res32 / "theta.npz")["theta"]
    assert theta32.dtype == np.float64 and not np.array_equal(theta32, theta64)

    s64, s32 = (json.loads((r / "summary.json").read_text()) for r in (res64, res32))
    assert s32["iterations"] == s64["iterations"] == CHUNKS * PER_CHUNK
    assert s32["fingerprint"] != s64["fingerprint"]
    relative = abs(s32["final_cost"] - s64["final_cost"]) / s64["final_cost"]
    print(f"final cost float64 {s64['final_cost']:.8f}, float32 {s32['final_cost']:.8f}")
    assert relative < 1e-3, (s64["final_cost"], s32["final_cost"])


def test_dtype_is_a_logged_param(pair):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{pair['workdir'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("natural")
    (run_info,) = client.search_runs([experiment.experiment_id])
    params = run_info.data.params
    logged = {key: value for key, value in params.items() if key.endswith("training.dtype")}
    assert logged and set(logged.values()) == {"float32"}, params
    assert any(key.endswith("optimizer.method") and v == "lbfgs" for key, v in params.items())


def test_changing_the_dtype_redoes_patches_and_every_chunk(pair):
    """Dry runs through Snakemake's API in this process (workflow_helpers.dry_run)."""
    workdir = pair["workdir"]
    config = workdir / "config" / "test.yaml"
    original = config.read_text()
    data = yaml.safe_load(original)
    assert data["experiments"]["natural"]["training"]["dtype"] == "float32"
    data["experiments"]["natural"]["training"]["dtype"] = "float64"
    config.write_text(yaml.safe_dump(data))
    target = "results/natural/summary.json"
    try:
        planned = dry_run(workdir, ["config/test.yaml"], target)
    finally:
        config.write_text(original)
    assert planned.get("sample_patches") == 1 and planned.get("train_chunk") == CHUNKS, planned
    # ... and back to float32: nothing to do (the dtype decides, nothing else changed).
    assert dry_run(workdir, ["config/test.yaml"], target) == {}
