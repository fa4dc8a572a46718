"""Rule finalize: theta.npz, history.tsv and summary.json from the last chunk's checkpoint."""

import json
import logging

import numpy as np

from sparseae.autoencoder import cost_terms, set_num_threads
from sparseae.checks import check_trained
from sparseae.datasets import dataset_checksum, get_source
from sparseae.io import atomic_write, read_json, save_theta_npz, write_json
from sparseae.rulelog import log_to_rule_log
from sparseae.train import load_checkpoint

smk = snakemake  # noqa: F821
set_num_threads(smk.threads)  # the cost's own thread pool: stay within the job's threads
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
model = smk.params.model
record = read_json(smk.input.config)

checkpoints = [load_checkpoint(path) for path in smk.input.chunks]
metas = [meta for _, _, meta in checkpoints]
# Global iteration at the end of each chunk (chunks may stop early when L-BFGS converges).
chunk_ends = [int(meta["last"]["iteration"]) for meta in metas]
theta = checkpoints[-1][0]
records = [dict(r) for _, recs, _ in checkpoints for r in recs]
check_trained(record["name"], len(records))  # e.g. a gtol above the starting gradient
with np.load(smk.input.patches, allow_pickle=False) as archive:
    data = archive["data"]

save_theta_npz(smk.output.theta, theta, config=json.dumps(record, sort_keys=True))

fields = ("iteration", "cost", "grad_norm", "fun_evals", "seconds")
with atomic_write(smk.output.history) as handle:
    handle.write("\t".join(fields) + "\n")
    for r in records:
        handle.write(
            f"{int(r['iteration'])}\t{float(r['cost']):.17g}\t"
            f"{float(r['grad_norm']):.17g}\t{int(r['fun_evals'])}\t"
            f"{float(r['seconds']):.6f}\n"
        )

terms = cost_terms(
    theta,
    data,
    visible_size=model["visible_size"],
    hidden_size=model["hidden_size"],
    lambda_=model["lambda_"],
    beta=model["beta"],
    rho=model["rho"],
)
rhohat = np.asarray(terms["rhohat"], dtype=np.float64)
dataset = smk.params.dataset
summary = {
    "experiment": record["name"],
    "fingerprint": record["fingerprint"],
    # Which data, wherever it lies: sha256 over the source's files (and the photo recipe).
    "dataset_checksum": dataset_checksum(
        dataset["source"],
        dataset["path"] or f"resources/{dataset['source']}",
        path=dataset["path"],
        split=dataset["split"] if get_source(dataset["source"]).splits else None,
    ),
    "final_cost": float(terms["total"]),
    "reconstruction": float(terms["reconstruction"]),
    "weight_decay": float(terms["weight_decay"]),
    "sparsity": float(terms["sparsity"]),
    "rho": float(model["rho"]),
    "rhohat": rhohat.tolist(),
    "rhohat_min": float(rhohat.min()),
    "rhohat_max": float(rhohat.max()),
    "rhohat_mean": float(rhohat.mean()),
    "rhohat_median": float(np.median(rhohat)),
    "iterations": int(records[-1]["iteration"]) if records else 0,
    "fun_evals": int(records[-1]["fun_evals"]) if records else 0,
    "num_examples": int(data.shape[1]),
    "chunks": len(metas),
    "chunk_ends": chunk_ends,
    # Wall time of the chunk jobs (imports excluded) and of the optimizer alone.
    "train_seconds": float(sum(m["wall_seconds"] for m in metas)),
    "optimizer_seconds": float(records[-1]["seconds"]) if records else 0.0,
    "chunk_wall_seconds": [float(m["wall_seconds"]) for m in metas],
}
write_json(smk.output.summary, summary)
logging.info(
    "final cost %.8f = reconstruction %.6f + weight decay %.6f + sparsity %.6f after %d iterations",
    summary["final_cost"],
    summary["reconstruction"],
    summary["weight_decay"],
    summary["sparsity"],
    summary["iterations"],
)
