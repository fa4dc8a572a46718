"""Rule check_gradient: numerical vs analytic gradient on a small sub-problem of the data."""

from sparseae.model.autoencoder import set_num_threads
from sparseae.pipeline.experiment import check_gradient
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
set_num_threads(smk.threads)  # the cost's own thread pool: stay within the job's threads
run_rule(
    smk.log[0],
    check_gradient,
    smk.input.patches,
    smk.output[0],
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    gradcheck=smk.params.gradcheck,
)
