"""Rule train_layer_chunk: chunk k of layer l's sparse autoencoder (warm start from k-1)."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import train_layer_chunk

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0], fmt="%(asctime)s %(message)s")
train_layer_chunk(
    smk.input.data,
    smk.input.previous[0] if smk.input.previous else None,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    chunk=int(smk.wildcards.k),
    progress_every=smk.resources.progress_every,
    threads=smk.threads,
)
