"""Rule train_chunk: chunk k of the L-BFGS training, warm-started from chunk k-1.

Chunk 1 starts from ``initialize_parameters`` with the experiment's "init" generator; chunk
k > 1 from the theta of ``chunks/{k-1}.npz``, after checking that checkpoint was written for
this configuration (fingerprint and length). Each checkpoint holds the records of its own
iterations (global numbering); ``finalize`` joins them. The checkpoint is written
atomically: a killed job leaves no ``chunks/{k}.npz`` and rerunning resumes at chunk k.
"""

import logging
import time
from pathlib import Path

import numpy as np

from sparseae.autoencoder import cost_terms, initialize_parameters, set_num_threads
from sparseae.config import check_resume, fingerprint, rng
from sparseae.rulelog import log_to_rule_log
from sparseae.tracking.environment import environment_info
from sparseae.train import LBFGSOptions, load_checkpoint, save_checkpoint, train_chunk

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0], fmt="%(asctime)s %(message)s")
log = logging.getLogger("train_chunk")

# A job killed while writing its checkpoint leaves `.{k}.npz.tmp-*` beside it (atomic_path
# cannot clean up after SIGKILL). Only this job writes chunk k, so such leftovers are stale.
checkpoint = Path(smk.output[0])
for stale in checkpoint.parent.glob(f".{checkpoint.name}.tmp-*"):
    stale.unlink(missing_ok=True)
    log.info("removed %s, left by a killed earlier attempt", stale)

params = smk.params.chunk
name, trajectory = params["name"], params["trajectory"]
model, optimizer = trajectory["model"], trajectory["optimizer"]
iterations = trajectory["training"]["iterations_per_chunk"]
k = int(smk.wildcards.k)
v, h = model["visible_size"], model["hidden_size"]
started = time.perf_counter()

# The cost function's own thread pool (and BLAS, via Snakemake's OPENBLAS_NUM_THREADS etc.)
# use exactly the job's threads: training gets the cores it was given, and the same thread
# count gives the same summation order, hence bit-identical results on reruns.
set_num_threads(smk.threads)

with np.load(smk.input.patches, allow_pickle=False) as archive:
    data = archive["data"]

if k == 1:
    theta0 = initialize_parameters(h, v, rng(trajectory["seed"], "init"))
    last = {"iteration": 0, "fun_evals": 0, "seconds": 0.0}
else:
    theta0, previous, meta = load_checkpoint(smk.input.previous[0])
    check_resume(smk.input.previous[0], meta, name, trajectory, theta0.size)
    # Counters continue across chunks; an empty chunk (converged) carries its start forward.
    last = previous[-1] if previous else meta["last"]
start_iteration = int(last["iteration"])

every = params["progress_every"]
log.info(
    "%s: chunk %d, %d iterations from iteration %d; %d threads; theta length %d",
    name,
    k,
    iterations,
    start_iteration,
    smk.threads,
    theta0.size,
)
log.info("%9s %14s %12s %9s %9s", "iteration", "cost", "grad_norm", "evals", "seconds")


def progress(record):
    """Progress line every few iterations (and at the chunk's last one)."""
    done = int(record["iteration"]) - start_iteration
    if done % every == 0 or done == iterations:
        log.info(
            "%9d %14.8f %12.4e %9d %9.2f",
            record["iteration"],
            record["cost"],
            record["grad_norm"],
            record["fun_evals"],
            record["seconds"],
        )


# maxfun is the whole run's evaluation budget (as minFunc's maxFunEvals); the iteration limit
# is this chunk's, so the number of chunks stays out of the trajectory.
options = LBFGSOptions(**optimizer, maxiter=start_iteration + iterations)
theta, records, stop = train_chunk(
    theta0,
    data,
    iterations,
    visible_size=v,
    hidden_size=h,
    lambda_=model["lambda_"],
    beta=model["beta"],
    rho=model["rho"],
    options=options,
    start_iteration=start_iteration,
    start_fun_evals=int(last["fun_evals"]),
    start_seconds=float(last["seconds"]),
    progress=progress,
    dtype=trajectory["training"]["dtype"],
)
# Chunk-end figures for MLflow: the three cost terms and rhohat statistics at this theta.
terms = cost_terms(
    theta,
    data,
    visible_size=v,
    hidden_size=h,
    lambda_=model["lambda_"],
    beta=model["beta"],
    rho=model["rho"],
)
rhohat = np.asarray(terms["rhohat"], dtype=np.float64)
meta = {
    "experiment": name,
    "chunk": k,
    "chunks": int(smk.resources.chunks_total),
    "fingerprint": fingerprint(trajectory),
    "trajectory": trajectory,
    "threads": smk.threads,
    "options": options.to_dict(),
    "terms": {key: float(terms[key]) for key in ("reconstruction", "weight_decay", "sparsity")}
    | {"total": float(terms["total"])},
    "rhohat": {
        "mean": float(rhohat.mean()),
        "min": float(rhohat.min()),
        "max": float(rhohat.max()),
    },
    "wall_seconds": time.perf_counter() - started,
    "last": {key: records[-1][key] for key in last} if records else last,
    "stop": stop,
    "environment": environment_info(),
}
save_checkpoint(smk.output[0], theta, records, meta)
log.info(
    "wrote %s: %d iterations in this chunk, cost %.8f; optimizer stopped (%s): %s",
    smk.output[0],
    len(records),
    records[-1]["cost"] if records else float("nan"),
    stop["reason"],
    stop["message"],
)
