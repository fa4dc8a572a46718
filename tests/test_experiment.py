"""The steps of an experiment, called directly (no Snakemake): identity checks, stops, keys.

Each workflow rule is a thin call of the function of its name in
:mod:`sparseae.pipeline.experiment`; these tests run those functions on a tiny
natural-image experiment in a temporary folder.
"""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest

from sparseae import config
from sparseae.config import RECOMPUTES, fingerprint, recomputes, trajectory_config
from sparseae.model import autoencoder
from sparseae.pipeline import experiment

pytestmark = pytest.mark.fast

TINY = {
    "run": ["natural"],
    "experiments": {
        "natural": {
            "patches": {"count": 300},
            "model": {"hidden_size": 6},
            "training": {"chunks": 2, "iterations_per_chunk": 5},
        }
    },
}


def resolved(overrides=None) -> dict:
    raw = copy.deepcopy(TINY)
    for path, value in (overrides or {}).items():
        node = raw["experiments"]["natural"]
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config.resolve_config(raw)["experiments"]["natural"]


@pytest.fixture
def folder(tmp_path):
    exp = resolved()
    experiment.sample_patches(
        tmp_path / "patches.npz", name="natural", data=experiment.data_config(exp)
    )
    return tmp_path


def chunk_path(folder, k: int):
    """The checkpoint of chunk ``k`` as the workflow names it: ``<folder>/chunks/<k>.npz``."""
    return folder / "chunks" / f"{k}.npz"


def train(folder, exp, chunks, name="natural"):
    trajectory = trajectory_config(exp)
    for k in range(1, chunks + 1):
        experiment.train_chunk(
            chunk_path(folder, k),
            k=k,
            previous=chunk_path(folder, k - 1) if k > 1 else None,
            patches=folder / "patches.npz",
            name=name,
            trajectory=trajectory,
        )
    return [chunk_path(folder, k) for k in range(1, chunks + 1)]


def finalize(folder, exp, chunks):
    return experiment.finalize(
        chunks,
        folder / "patches.npz",
        theta=folder / "theta.npz",
        history=folder / "history.tsv",
        summary=folder / "summary.json",
        name="natural",
        trajectory=trajectory_config(exp),
    )


# ------------------------------------------------------------------ the key classification


def schema_leaves():
    """Dotted paths of every leaf key of an experiment in the shipped schema."""
    schema = config.load_schema()
    defs = schema["$defs"]

    def walk(node, prefix):
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        properties = node.get("properties")
        if not properties:
            yield ".".join(prefix)
            return
        for key, child in properties.items():
            yield from walk(child, [*prefix, key])

    return list(walk(defs["experiment"], []))


def test_every_schema_key_says_what_a_change_recomputes():
    leaves = schema_leaves()
    assert len(leaves) > 40
    unclassified = []
    for leaf in leaves:
        try:
            assert recomputes(leaf) in config.RECOMPUTE_KINDS
        except KeyError:
            unclassified.append(leaf)
    assert unclassified == [], f"add these keys to sparseae.config.RECOMPUTES: {unclassified}"
    # ... and every entry of the table names a key that exists.
    for entry in RECOMPUTES:
        assert any(leaf == entry or leaf.startswith(entry + ".") for leaf in leaves), entry


def test_an_unclassified_key_is_refused_by_name():
    with pytest.raises(KeyError, match="model.new_knob"):
        recomputes("brand_new_section.model.new_knob")


def test_trajectory_is_the_keys_marked_trajectory():
    exp = resolved()
    trajectory = trajectory_config(exp)
    assert set(trajectory) == {"dataset", "patches", "model", "optimizer", "seed", "training"}
    assert trajectory["training"] == {
        "iterations_per_chunk": 5,
        "dtype": "float64",
        "device": "cpu",
    }
    # Selecting twice changes nothing, so steps may pass either the experiment or its trajectory.
    assert trajectory_config(trajectory) == trajectory
    assert fingerprint(trajectory) == fingerprint(exp)
    for path, value, same in [
        ("training.progress_every", 3, True),
        ("training.chunks", 9, True),
        ("gradcheck.bound", 1e-8, True),
        ("resources.train.threads", 1, True),
        ("description", "other words", True),
        ("model.rho", 0.02, False),
        ("training.iterations_per_chunk", 6, False),
        ("seed", 2, False),
        ("training.device", "array_api_strict", False),
        ("patches.count", 301, False),
    ]:
        assert (fingerprint(resolved({path: value})) == fingerprint(exp)) is same, path


# ------------------------------------------------------------------ identity of result files


def test_chunked_steps_continue_and_finalize_from_any_chunk(folder):
    exp = resolved()
    chunks = train(folder, exp, 3)
    three = finalize(folder, exp, chunks)
    assert three["iterations"] == 15 and three["final_chunk"] == 3
    assert three["stop"]["reason"] == "budget"
    theta3 = np.load(folder / "theta.npz", allow_pickle=False)["theta"]
    # Lowering training.chunks: finalize from chunk 2 without training.
    two = finalize(folder, exp, chunks[:2])
    assert two["final_chunk"] == 2 and two["iterations"] == 10
    with (
        np.load(chunks[1], allow_pickle=False) as chunk2,
        np.load(folder / "theta.npz", allow_pickle=False) as theta,
    ):
        assert np.array_equal(theta["theta"], chunk2["theta"])
        assert not np.array_equal(theta["theta"], theta3)
    history = (folder / "history.tsv").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in history[1:]] == list(range(1, 11))


def test_a_foreign_last_checkpoint_is_refused_naming_the_file(folder, tmp_path_factory):
    exp = resolved()
    chunks = train(folder, exp, 2)
    other_exp = resolved({"seed": 7})  # same sizes, another trajectory
    other = tmp_path_factory.mktemp("other")
    experiment.sample_patches(
        other / "patches.npz", name="other", data=experiment.data_config(other_exp)
    )
    other_chunks = train(other, other_exp, 2, name="other")
    chunks[1].write_bytes(other_chunks[1].read_bytes())
    with pytest.raises(experiment.ForeignResultError) as error:
        finalize(folder, exp, chunks)
    message = str(error.value)
    assert str(chunks[1]) in message and fingerprint(exp) in message
    assert "delete it" in message
    assert not (folder / "theta.npz").exists()


def test_a_checkpoint_of_another_dtype_is_refused_on_resume(folder, tmp_path_factory):
    """A float32 run's chunk 1 is no start for chunk 2 of the float64 run: the key is named."""
    exp32 = resolved({"training.dtype": "float32"})
    other = tmp_path_factory.mktemp("float32")
    experiment.sample_patches(
        other / "patches.npz", name="natural", data=experiment.data_config(exp32)
    )
    (chunk1,) = train(other, exp32, 1)
    with pytest.raises(experiment.ForeignResultError, match="training.dtype") as error:
        experiment.train_chunk(
            chunk_path(folder, 2), k=2, previous=chunk1,
            patches=folder / "patches.npz", name="natural",
            trajectory=trajectory_config(resolved()),
        )  # fmt: skip
    assert "results/natural/chunks/" in str(error.value)
    assert not chunk_path(folder, 2).exists()


def test_a_killed_writers_temporary_file_is_removed_and_chunks_are_exact_reruns(folder, caplog):
    exp = resolved()
    (chunk1,) = train(folder, exp, 1)
    first = np.load(chunk1, allow_pickle=False)["theta"]
    stale = chunk1.parent / f".{chunk1.name}.tmp-12345"
    stale.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.INFO):
        train(folder, exp, 1)
    assert not stale.exists() and "left by a killed earlier attempt" in caplog.text
    assert np.load(chunk1, allow_pickle=False)["theta"].tobytes() == first.tobytes()


def test_a_renamed_chunk_and_foreign_patches_are_refused(folder):
    exp = resolved()
    chunks = train(folder, exp, 2)
    chunks[0].write_bytes(chunks[1].read_bytes())  # chunk 2 posing as chunk 1
    with pytest.raises(experiment.ForeignResultError, match="holds chunk 2, not chunk 1"):
        finalize(folder, exp, chunks)
    # Patches sampled for other data settings are refused by every reader.
    with pytest.raises(experiment.ForeignResultError, match="patches.npz"):
        experiment.load_patches(
            folder / "patches.npz", name="natural", experiment=resolved({"patches.count": 299})
        )


def test_a_corrupt_checkpoint_names_the_file_and_the_fix(folder):
    exp = resolved()
    chunks = train(folder, exp, 1)
    chunks[0].write_bytes(b"not a zip archive")
    with pytest.raises(experiment.ResultFileError) as error:
        experiment.train_chunk(
            chunk_path(folder, 2),
            k=2,
            previous=chunks[0],
            patches=folder / "patches.npz",
            name="natural",
            trajectory=trajectory_config(exp),
        )
    assert str(chunks[0]) in str(error.value) and "delete" in str(error.value)


def test_a_checkpoint_with_nan_parameters_names_the_file(folder):
    exp = resolved()
    chunks = train(folder, exp, 1)
    with np.load(chunks[0], allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["theta"][3] = np.nan
    np.savez(chunks[0], **arrays)
    # A damaged file (or a diverged run), not a foreign one: the reader names it and the fix.
    with pytest.raises(experiment.ResultFileError, match=str(chunks[0])) as error:
        experiment.train_chunk(
            chunk_path(folder, 2),
            k=2,
            previous=chunks[0],
            patches=folder / "patches.npz",
            name="natural",
            trajectory=trajectory_config(exp),
        )
    assert "1 non-finite values" in str(error.value) and "delete" in str(error.value)


# ------------------------------------------------------------------ optimizer stops


@pytest.mark.parametrize("method", ["lbfgs", "scipy-lbfgsb"])
def test_a_non_finite_cost_is_an_abnormal_stop_in_log_checkpoint_and_summary(
    folder, monkeypatch, caplog, method
):
    exp = resolved({"training.iterations_per_chunk": 20, "optimizer.method": method})
    real = autoencoder.cost_and_grad
    calls = {"n": 0}

    def nan_after_six(theta, data, **kwargs):
        calls["n"] += 1
        f, g = real(theta, data, **kwargs)
        return (np.nan if calls["n"] > 6 else f), g

    monkeypatch.setattr(autoencoder, "cost_and_grad", nan_after_six)
    with caplog.at_level(logging.INFO, logger="sparseae.pipeline.experiment"):
        meta = experiment.train_chunk(
            chunk_path(folder, 1),
            k=1,
            previous=None,
            patches=folder / "patches.npz",
            name="natural",
            trajectory=trajectory_config(exp),
        )
    monkeypatch.setattr(autoencoder, "cost_and_grad", real)
    stop = meta["stop"]
    assert stop["reason"] == "abnormal" and "non-finite" in stop["message"]
    assert 0 < stop["iterations"] < 20
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "abnormal" in warnings[0] and "chunk 1" in warnings[0]
    with np.load(chunk_path(folder, 1), allow_pickle=False) as archive:
        assert np.all(np.isfinite(archive["theta"]))
        assert json.loads(str(archive["meta"][()]))["stop"] == stop
    summary = finalize(folder, exp, [chunk_path(folder, 1)])
    assert summary["stop"]["reason"] == "abnormal" and summary["chunk_stops"] == [stop]
    written = json.loads((folder / "summary.json").read_text())
    assert written["stop"]["reason"] == "abnormal" and written["converged"] is False


def test_a_converged_run_says_so(folder):
    exp = resolved({"optimizer.gtol": 1e-3, "training.iterations_per_chunk": 200})
    chunks = train(folder, exp, 2)
    summary = finalize(folder, exp, chunks)
    assert summary["chunk_stops"][0]["reason"] == "converged"
    assert summary["converged"] is True and summary["iterations"] < 400


def test_result_files_name_what_mlflow_shows_of_them(folder):
    """summary.json and gradcheck.json carry ``metrics`` blocks: the MLflow names."""
    exp = resolved()
    summary = finalize(folder, exp, train(folder, exp, 2))
    written = json.loads((folder / "summary.json").read_text())
    # The final cost, its terms and rhohat statistics are the chunk series' last points.
    assert written["metrics"] == {
        "rhohat_median": summary["rhohat_median"],
        "iterations": 10,
        "chunks": 2,
        "converged": False,
        "train_seconds": summary["train_seconds"],
        "optimizer_seconds": summary["optimizer_seconds"],
    }
    assert "params" not in written  # config.json gives MLflow the settings
    result = experiment.check_gradient(
        folder / "patches.npz",
        folder / "gradcheck.json",
        name="natural",
        trajectory=trajectory_config(exp),
        gradcheck=exp["gradcheck"],
    )
    written = json.loads((folder / "gradcheck.json").read_text())
    assert written["metrics"] == {
        f"gradcheck_{k}": result[k] for k in ("quadratic", "autoencoder", "max_abs_diff", "passed")
    }
    assert written["metrics"]["gradcheck_passed"] is True
    assert "params" not in written


def test_the_packaged_schema_is_the_only_schema():
    """The workflow validates with the package's schema (resolve_config); no copy to drift."""
    from workflow_helpers import REPO

    schemas = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("[sw]*/**/*.schema.yaml"))
    assert schemas == ["src/sparseae/schemas/config.schema.yaml"]
    assert config.DEFAULT_SCHEMA.is_file()


def test_the_config_reference_shows_what_each_key_recomputes():
    from workflow_helpers import REPO

    text = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    section = text.split("## What a change recomputes", 1)[1].split("\n## ", 1)[0]
    rows = dict(
        (key, kind)
        for key, kind in __import__("re").findall(
            r"^\| `([\w.]+)` \| (\w+) \|", section, flags=__import__("re").M
        )
    )
    assert rows == RECOMPUTES
