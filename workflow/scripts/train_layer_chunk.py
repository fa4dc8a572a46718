"""Rule train_layer_chunk: chunk k of layer l's sparse autoencoder (warm start from k-1)."""

from sparseae.pipeline.stacked import train_layer_chunk
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    train_layer_chunk,
    smk.input.data,
    smk.input.previous[0] if smk.input.previous else None,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    chunk=int(smk.wildcards.k),
    # A resource, not a param: how often progress is logged never retrains a chunk.
    progress_every=smk.resources.progress_every,
    threads=smk.threads,
    fmt="%(asctime)s %(message)s",  # progress lines as a table under the timestamps
)
