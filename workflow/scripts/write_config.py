"""Rule write_config: results/{experiment}/config.json, the resolved experiment config."""

from sparseae.config import write_config
from sparseae.rulelog import run_rule

smk = snakemake  # noqa: F821
run_rule(smk.log[0], write_config, smk.output[0], smk.wildcards.experiment, smk.params.experiment)
