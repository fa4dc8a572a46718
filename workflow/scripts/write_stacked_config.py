"""Rule write_stacked_config: results/{experiment}/stacked_config.json (config, fingerprints)."""

from sparseae.pipeline.stacked import write_stacked_config
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(
    smk.log[0], write_stacked_config, smk.output[0], smk.wildcards.experiment, smk.params.experiment
)
