"""Rule finetune_chunk: chunk k of fine-tuning the whole stack (chunk 1 from the pretrained)."""

from sparseae.pipeline.stacked import finetune_chunk
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    finetune_chunk,
    smk.input.data,
    list(smk.input.layers),
    smk.input.softmax,
    smk.input.previous[0] if smk.input.previous else None,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    chunk=int(smk.wildcards.k),
    # A resource, not a param: how often progress is logged never refits a chunk.
    progress_every=smk.resources.progress_every,
    fmt="%(asctime)s %(message)s",  # progress lines as a table under the timestamps
)
