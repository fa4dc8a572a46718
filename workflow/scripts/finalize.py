"""Rule finalize: theta.npz, history.tsv and summary.json from chunks 1..K."""

from sparseae.pipeline.experiment import finalize
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    finalize,
    list(smk.input.chunks),
    smk.input.patches,
    theta=smk.output.theta,
    history=smk.output.history,
    summary=smk.output.summary,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    threads=smk.threads,
)
