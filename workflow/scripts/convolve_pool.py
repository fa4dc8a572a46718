"""Rule convolve_pool: features of chunk k convolved over the labeled images, mean-pooled."""

from sparseae.pipeline.cnn import convolve_pool
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
result = run_rule(
    smk.log[0],
    convolve_pool,
    smk.output[0],
    k=int(smk.wildcards.k),
    theta=smk.input.theta,
    patches=smk.input.patches,
    labeled=smk.input.images,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    pooling=smk.params.pooling,
)
# One progress line on the console per chunk (the log has one per image set).
name, k, total = smk.wildcards.experiment, smk.wildcards.k, smk.resources.chunks_total
first, stop = result["features"]
print(f"{name}: pooled chunk {k}/{total}: features {first}..{stop - 1}, {result['seconds']:.1f} s")
