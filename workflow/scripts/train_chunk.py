"""Rule train_chunk: chunk k of the L-BFGS training, warm-started from chunk k-1."""

from sparseae.pipeline.experiment import train_chunk
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
meta = run_rule(
    smk.log[0],
    train_chunk,
    smk.output[0],
    k=int(smk.wildcards.k),
    previous=smk.input.previous[0] if smk.input.previous else None,
    patches=smk.input.patches,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    threads=smk.threads,
    # A resource, not a param: how often progress is logged never retrains a chunk.
    progress_every=smk.resources.progress_every,
    fmt="%(asctime)s %(message)s",  # progress lines as a table under the timestamps
)
# One line on the console per chunk (the log has every iteration).
name, k, total = smk.wildcards.experiment, smk.wildcards.k, smk.resources.chunks_total
cost, seconds = meta["terms"]["total"], meta["wall_seconds"]
print(f"{name}: chunk {k}/{total}: cost {cost:.4f}, {seconds:.1f} s", flush=True)
