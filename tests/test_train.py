"""L-BFGS training, records, budgets, stops, checkpoints and chunked runs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import scipy.optimize

from sparseae.model import autoencoder as ae
from sparseae.model import train

pytestmark = pytest.mark.fast

SMALL = dict(visible_size=16, hidden_size=4, lambda_=1e-4, beta=3.0, rho=0.05)


def _small_problem(m=300, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.random((16, m)) * 0.8 + 0.1
    theta0 = ae.initialize_parameters(4, 16, rng)
    return theta0, data


def _chunk(*args, **kwargs):
    """``train.train_chunk`` as ``(theta, records, stop)``, ``stop`` as a checkpoint holds it."""
    result = train.train_chunk(*args, **kwargs)
    assert isinstance(result, train.ChunkResult) and result.iterations == len(result.records)
    return result.theta, result.records, result.stop


def _chunked(theta0, data, chunks, per, *, stop_after=None, folder=None, **kwargs):
    """``chunks`` chunks of ``per`` iterations with warm restarts, each chunk kept in memory or,
    with ``folder``, read back from ``folder/{k}.npz`` when present (a resumed run)."""
    theta, records, last = theta0, [], train.FIRST
    for k in range(1, chunks + 1 if stop_after is None else stop_after + 1):
        path = None if folder is None else folder / f"{k}.npz"
        if path is not None and path.exists():
            theta, chunk, _ = train.load_checkpoint(path)
        else:
            result = train.train_chunk(theta, data, per, start=last, **kwargs)
            theta, chunk = result.theta, result.records
            if path is not None:
                train.save_checkpoint(path, theta, chunk, {"chunk": k, "stop": result.stop})
        records += chunk
        last = chunk[-1] if chunk else last
    return theta, records


class _Counting:
    """cost_and_grad that counts its calls (the real function, just counted)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, theta, data, **kwargs):
        self.calls += 1
        return ae.cost_and_grad(theta, data, **kwargs)


def test_options_defaults_mirror_minfunc_and_are_logged():
    options = train.LBFGSOptions()
    assert options.to_dict() == {
        "method": "lbfgs", "maxcor": 100, "maxiter": 400, "maxfun": 1000,
        "gtol": 1e-9, "ftol": 1e-12, "maxls": 20,
    }  # fmt: skip
    with pytest.raises(ValueError, match="maxcor"):
        train.LBFGSOptions(maxcor=0)
    with pytest.raises(ValueError, match="method must be one of .*'scipy-lbfgsb'.*'bfgs'"):
        train.LBFGSOptions(method="bfgs")


def test_every_option_is_passed_to_scipy(monkeypatch):
    seen = {}
    real = scipy.optimize.minimize

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", spy)  # train imports it when it is used
    theta0, data = _small_problem()
    options = train.LBFGSOptions(
        method="scipy-lbfgsb", maxcor=7, maxiter=50, maxfun=60, gtol=1e-7, ftol=1e-11, maxls=9
    )
    start = {**train.FIRST, "iteration": 3}
    train.train_chunk(theta0, data, 5, options=options, start=start, **SMALL)
    assert seen["method"] == "L-BFGS-B" and seen["jac"] is True
    assert seen["options"] == dict(maxcor=7, maxiter=5, maxfun=60, gtol=1e-7, ftol=1e-11, maxls=9)


@pytest.mark.parametrize("method", train.METHODS)
def test_records_describe_the_accepted_iterates_without_extra_evaluations(method):
    theta0, data = _small_problem()
    counting = _Counting()
    seen = []
    theta, records, stop = _chunk(
        theta0, data, 25, start={"iteration": 100, "fun_evals": 7, "seconds": 2.5},
        progress=seen.append, cost_fn=counting, options=train.LBFGSOptions(method=method),
        **SMALL,
    )  # fmt: skip
    assert len(records) == 25 and seen == records
    assert [r["iteration"] for r in records] == list(range(101, 126))
    assert set(records[0]) == set(train.RECORD_FIELDS)
    evals = [r["fun_evals"] for r in records]
    assert evals == sorted(evals) and evals[0] >= 7 + 2
    # every evaluation was made by the optimizer: the records cost none
    assert records[-1]["fun_evals"] == 7 + counting.calls
    seconds = [r["seconds"] for r in records]
    assert seconds[0] > 2.5 and seconds == sorted(seconds)
    # the last record is the returned theta, exactly
    cost, grad = ae.cost_and_grad(theta, data, **SMALL)
    assert records[-1]["cost"] == cost
    assert records[-1]["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-15)
    assert records[-1]["cost"] < records[0]["cost"] < ae.cost_and_grad(theta0, data, **SMALL)[0]
    np.testing.assert_array_equal(theta0, _small_problem()[0])  # input untouched
    # the optimizer's own account: this chunk's counts, and why it stopped
    assert stop["reason"] == "budget" and stop["status"] == 1
    assert stop["iterations"] == 25 and stop["fun_evals"] == counting.calls
    assert "iteration" in stop["message"].lower()


@pytest.mark.parametrize("method", train.METHODS)
def test_run_budgets_are_shared_by_chunks(method):
    theta0, data = _small_problem()
    options = train.LBFGSOptions(method=method, maxiter=400, maxfun=1000)
    at = {**train.FIRST, "iteration": 390}
    _, records, _ = _chunk(theta0, data, 50, options=options, start=at, **SMALL)
    assert len(records) == 10 and records[-1]["iteration"] == 400
    at = {**train.FIRST, "iteration": 400}
    theta, records, stop = _chunk(theta0, data, 50, options=options, start=at, **SMALL)
    assert records == [] and np.array_equal(theta, theta0)
    assert stop["reason"] == "budget" and stop["iterations"] == stop["fun_evals"] == 0
    # maxfun counts evaluations (checked between iterations), not iterations
    small_budget = train.LBFGSOptions(method=method, maxfun=10)
    _, records, stop = _chunk(theta0, data, 50, options=small_budget, **SMALL)
    assert 0 < len(records) < 50 and records[-1]["fun_evals"] <= 10 + options.maxls
    assert stop["reason"] == "evaluations" and stop["status"] == 1
    assert stop["fun_evals"] == records[-1]["fun_evals"] > 10


@pytest.mark.parametrize("method", train.METHODS)
def test_maxcor_changes_the_trajectory(method):
    theta0, data = _small_problem()
    many, few = (train.LBFGSOptions(method=method, maxcor=c) for c in (100, 3))
    _, a, _ = _chunk(theta0, data, 30, options=many, **SMALL)
    _, b, _ = _chunk(theta0, data, 30, options=few, **SMALL)
    # iteration k uses k - 1 pairs: identical while both keep them all (k <= 4)…
    assert [r["cost"] for r in a[:4]] == [r["cost"] for r in b[:4]]
    assert a[-1]["cost"] != b[-1]["cost"]  # …then the memory size matters


def test_convergence_and_abnormal_stops_are_reported():
    theta0, data = _small_problem()
    # a loose gtol ends the run early: "converged", for both optimizers
    for method in train.METHODS:
        loose = train.LBFGSOptions(method=method, gtol=1e-2)
        _, records, stop = _chunk(theta0, data, 200, options=loose, **SMALL)
        assert stop["reason"] == "converged" and stop["status"] == 0, stop
        assert stop["iterations"] == len(records) < 200


@pytest.mark.parametrize("method", train.METHODS)
def test_a_non_finite_cost_ends_the_chunk_at_the_last_finite_point(method):
    theta0, data = _small_problem()

    class Breaks:
        """The real cost for 6 evaluations, then a NaN cost (the gradient stays finite)."""

        calls = 0
        points: list = []

        def __call__(self, theta, data, **kwargs):
            self.calls += 1
            f, g = ae.cost_and_grad(theta, data, **kwargs)
            self.points.append(np.array(theta))
            return (f if self.calls <= 6 else np.nan), g

    breaks = Breaks()
    options = train.LBFGSOptions(method=method)
    theta, records, stop = _chunk(theta0, data, 50, options=options, cost_fn=breaks, **SMALL)
    # "abnormal", not a silent success, with the same account for both optimizers
    assert stop["reason"] == "abnormal" and stop["status"] == 2, stop
    assert "non-finite" in stop["message"] and 0 < len(records) < 50
    assert stop["iterations"] == len(records) and stop["fun_evals"] == breaks.calls
    assert f"iteration {len(records) + 1}" in stop["message"]
    # theta is the last recorded iterate, whose cost and gradient were finite
    cost, grad = ae.cost_and_grad(theta, data, **SMALL)
    assert cost == records[-1]["cost"] and np.all(np.isfinite(theta))
    assert any(np.array_equal(theta, p) for p in breaks.points[:6])


def test_checkpoint_round_trip_is_exact(tmp_path):
    theta0, data = _small_problem()
    theta, records, _ = _chunk(theta0, data, 5, **SMALL)
    meta = {"chunk": 1, "options": train.LBFGSOptions().to_dict(), "sizes": [16, 4]}
    path = tmp_path / "chunks" / "1.npz"
    train.save_checkpoint(path, theta, records, meta)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(["theta", "meta", *train.RECORD_FIELDS])
        assert archive["theta"].dtype == np.float64 and archive["meta"].shape == ()
        assert json.loads(str(archive["meta"])) == meta
        assert archive["iteration"].dtype == np.int64 and archive["cost"].shape == (5,)
    theta2, records2, meta2 = train.load_checkpoint(path)
    np.testing.assert_array_equal(theta2, theta)
    assert records2 == records and meta2 == meta
    assert [p.name for p in path.parent.iterdir()] == ["1.npz"]  # no temporary left behind


def test_load_checkpoint_errors_name_the_problem(tmp_path):
    theta0, data = _small_problem()
    theta, records, _ = _chunk(theta0, data, 3, **SMALL)
    good = tmp_path / "good.npz"
    train.save_checkpoint(good, theta, records, {"lambda_": 1e-4})
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        train.load_checkpoint(tmp_path / "missing.npz")
    partial = tmp_path / "partial.npz"
    np.savez(partial, theta=theta, meta=np.array("{}"))
    with pytest.raises(ValueError, match="lacks key"):
        train.load_checkpoint(partial)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.npz"):
        train.load_checkpoint(truncated)
    pickled = tmp_path / "pickled.npz"
    arrays = train.records_to_arrays(records)
    np.savez(pickled, theta=theta, meta=np.array([{"a": 1}], dtype=object), **arrays)
    with pytest.raises(ValueError, match="pickled.npz.*allow_pickle"):
        train.load_checkpoint(pickled)


def test_chunked_run_resumes_bit_identically(tmp_path):
    """Each chunk depends only on the previous chunk's exact float64 theta (checkpointed)."""
    theta0, data = _small_problem()
    kwargs = dict(options=train.LBFGSOptions(maxiter=40), **SMALL)
    theta_full, records_full = _chunked(theta0, data, 4, 10, **kwargs)
    assert [r["iteration"] for r in records_full] == list(range(1, 41))
    # "killed" after chunk 2, then resumed: chunks 1-2 are read back, not recomputed
    _chunked(theta0, data, 4, 10, folder=tmp_path, stop_after=2, **kwargs)
    counting = _Counting()
    theta_resumed, records_resumed = _chunked(
        theta0, data, 4, 10, folder=tmp_path, cost_fn=counting, **kwargs
    )
    np.testing.assert_array_equal(theta_resumed, theta_full)
    strip = lambda rs: [{k: r[k] for k in r if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(records_resumed) == strip(records_full)
    assert counting.calls == records_full[-1]["fun_evals"] - records_full[19]["fun_evals"]


@pytest.mark.parametrize("method", train.METHODS)
def test_float32_cost_trains_close_to_float64_and_resumes_bit_identically(tmp_path, method):
    theta0, data = _small_problem()
    options = train.LBFGSOptions(method=method, maxiter=40)
    _, r64, _ = _chunk(theta0, data, 40, options=options, **SMALL)
    theta32, r32, _ = _chunk(theta0, data, 40, options=options, dtype="float32", **SMALL)
    # dtype="float32" is the float32 data path: the data converted once, nothing else changed
    _, same, _ = _chunk(theta0, data.astype(np.float32), 40, options=options, **SMALL)
    assert [r["cost"] for r in same] == [r["cost"] for r in r32]
    assert theta32.dtype == np.float64
    assert r32[-1]["cost"] != r64[-1]["cost"]
    assert r32[-1]["cost"] == pytest.approx(r64[-1]["cost"], rel=1e-3)

    kwargs = dict(options=options, dtype="float32", **SMALL)
    full, records_full = _chunked(theta0, data, 4, 10, **kwargs)
    _chunked(theta0, data, 4, 10, folder=tmp_path, stop_after=2, **kwargs)
    resumed, records_resumed = _chunked(theta0, data, 4, 10, folder=tmp_path, **kwargs)
    assert resumed.tobytes() == full.tobytes()
    assert [r["cost"] for r in records_resumed] == [r["cost"] for r in records_full]
    with pytest.raises(ValueError, match="dtype must be one of"):
        train.train_chunk(theta0, data, 5, dtype="float16", **SMALL)


def _octave_rand(seed, rows, cols):
    """Octave's rand('state', seed) stream (shared/reference/README.md recipe)."""
    random.seed(seed)
    state = random.getstate()[1]
    stream = np.random.RandomState()
    stream.set_state(("MT19937", np.array(state[:624], dtype=np.uint32), state[624]))
    return stream.random_sample(rows * cols).reshape((rows, cols), order="F")


@pytest.fixture(scope="module")
def reference_run(reference):
    ref = reference("sae_train_small")
    data = _octave_rand(int(ref["data_seed"]), int(ref["visible"]), int(ref["m"])) * 0.8 + 0.1
    kwargs = dict(
        visible_size=int(ref["visible"]), hidden_size=int(ref["hidden"]),
        lambda_=float(ref["lam"]), beta=float(ref["beta"]), rho=float(ref["rho"]),
    )  # fmt: skip
    return ref, data, kwargs


def test_reference_start_point_is_reproduced(reference_run):
    ref, data, kwargs = reference_run
    cost, grad = ae.cost_and_grad(ref["theta0"], data, **kwargs)
    assert cost == pytest.approx(float(ref["cost0"]), rel=1e-12)
    assert np.linalg.norm(grad - ref["grad0"]) <= 1e-10 * np.linalg.norm(ref["grad0"])


# minFunc's final cost after 400 iterations (shared/reference/README.md, OpenBLAS run).
MINFUNC_FINAL = 1.66802


@pytest.mark.slow
@pytest.mark.parametrize("method", train.METHODS)
def test_400_iterations_reach_minfunc_cost(reference_run, method):
    ref, data, kwargs = reference_run
    assert float(ref["final_cost"]) == pytest.approx(MINFUNC_FINAL, abs=1e-5)
    options = train.LBFGSOptions(method=method)
    _, records, stop = _chunk(ref["theta0"], data, 400, options=options, **kwargs)
    assert len(records) == 400 and stop["reason"] == "budget"
    print(f"{method}, continuous 400 iterations: final cost {records[-1]['cost']:.8f}")
    assert records[-1]["cost"] <= MINFUNC_FINAL * (1 + 1e-3)
    if method == "lbfgs":
        # minFunc's algorithm: its trace, not just its end point. The reference's own rerun with
        # another BLAS drifts by up to 1.3e-4 relative; ours stays as close.
        trace = np.asarray(ref["fval_trace"], dtype=np.float64).ravel()[1:]
        costs = np.array([r["cost"] for r in records])
        rel = np.abs(costs - trace) / trace
        assert rel[:50].max() < 1e-9, rel[:50].max()
        assert rel.max() < 2e-4, rel.max()
        assert records[-1]["cost"] == pytest.approx(float(ref["final_cost"]), rel=5e-5)
        evals = np.asarray(ref["funccount_trace"]).ravel()[1:]
        assert [r["fun_evals"] for r in records[:100]] == evals[:100].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("method", train.METHODS)
def test_chunked_8x50_reaches_minfunc_cost(reference_run, tmp_path, method):
    ref, data, kwargs = reference_run
    options = train.LBFGSOptions(method=method)
    _, records = _chunked(ref["theta0"], data, 8, 50, folder=tmp_path, options=options, **kwargs)
    assert len(records) == 400 and len(list(tmp_path.glob("*.npz"))) == 8
    print(f"{method}, chunked 8 x 50 iterations: final cost {records[-1]['cost']:.8f}")
    assert records[-1]["cost"] <= MINFUNC_FINAL * (1 + 1e-3)
