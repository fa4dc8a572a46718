"""Rule finetune_chunk: chunk k of fine-tuning the whole stack (chunk 1 from the pretrained)."""

from sparseae.rulelog import log_to_rule_log
from sparseae.stacked_pipeline import finetune_chunk

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0], fmt="%(asctime)s %(message)s")
finetune_chunk(
    smk.input.data,
    list(smk.input.layers),
    smk.input.softmax,
    smk.input.previous[0] if smk.input.previous else None,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    chunk=int(smk.wildcards.k),
    progress_every=smk.resources.progress_every,
)
