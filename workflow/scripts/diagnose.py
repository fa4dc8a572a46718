"""Rule diagnose: results/{experiment}/diagnostics.json and units.png from theta and patches."""

from sparseae.pipeline.experiment import diagnose
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0],
    diagnose,
    smk.input.theta,
    smk.input.patches,
    json_path=smk.output.json,
    png_path=smk.output.png,
    name=smk.wildcards.experiment,
    trajectory=smk.params.trajectory,
    settings=smk.params.settings,
)
