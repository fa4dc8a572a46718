"""Rule train_chunk: chunk k of the L-BFGS training, warm-started from chunk k-1.

Chunk 1 starts from ``initialize_parameters`` with the experiment's "init" generator; chunk
k > 1 from the theta of ``chunks/{k-1}.npz``, after checking that checkpoint was written for
this configuration (fingerprint and length). Each checkpoint carries the records of all
iterations so far, so the last one holds the whole history. The checkpoint is written
atomically: a killed job leaves no ``chunks/{k}.npz`` and rerunning resumes at chunk k.
"""

import logging
import time

import numpy as np

from sparseae.autoencoder import initialize_parameters
from sparseae.config import check_resume, fingerprint, rng
from sparseae.train import LBFGSOptions, load_checkpoint, save_checkpoint, train_chunk

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0], filemode="w", level=logging.INFO, format="%(asctime)s %(message)s"
)
log = logging.getLogger("train_chunk")

params = smk.params.chunk
name, trajectory = params["name"], params["trajectory"]
model, optimizer = trajectory["model"], trajectory["optimizer"]
iterations = trajectory["training"]["iterations_per_chunk"]
k = int(smk.wildcards.k)
v, h = model["visible_size"], model["hidden_size"]
started = time.perf_counter()

try:  # the numerics may parallelise element-wise work themselves; give them the job's cores
    from sparseae.autoencoder import set_num_threads

    set_num_threads(smk.threads)
except ImportError:
    pass

with np.load(smk.input.patches, allow_pickle=False) as archive:
    data = archive["data"]

if k == 1:
    theta0 = initialize_parameters(h, v, rng(trajectory["seed"], "init"))
    previous = []
    start_iteration, start_evals, start_seconds = 0, 0, 0.0
else:
    theta0, previous, meta = load_checkpoint(smk.input.previous[0])
    check_resume(smk.input.previous[0], meta, name, trajectory, theta0.size)
    previous = list(previous)
    last = previous[-1] if previous else None
    start_iteration = int(last["iteration"]) if last is not None else 0
    start_evals = int(last["fun_evals"]) if last is not None else 0
    start_seconds = float(last["seconds"]) if last is not None else 0.0

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
    it = int(record["iteration"])
    if (it - start_iteration) % every == 0 or it - start_iteration == iterations:
        log.info(
            "%9d %14.8f %12.4e %9d %9.2f",
            it,
            record["cost"],
            record["grad_norm"],
            start_evals + int(record["fun_evals"]),
            start_seconds + float(record["seconds"]),
        )


options = LBFGSOptions(**optimizer)
theta, records = train_chunk(
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
    progress=progress,
)
# Evaluations and seconds count from the start of the run, across chunks.
records = [
    {
        **dict(r),
        "fun_evals": start_evals + int(r["fun_evals"]),
        "seconds": start_seconds + float(r["seconds"]),
    }
    for r in records
]
meta = {
    "experiment": name,
    "chunk": k,
    "fingerprint": fingerprint(trajectory),
    "trajectory": trajectory,
    "threads": smk.threads,
    "chunk_seconds": time.perf_counter() - started,
}
save_checkpoint(smk.output[0], theta, previous + records, meta)
log.info(
    "wrote %s: %d iterations in this chunk, cost %.8f",
    smk.output[0],
    len(records),
    records[-1]["cost"] if records else float("nan"),
)
