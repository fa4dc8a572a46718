# sparseae: sparse autoencoders as the UFLDL / CS294A exercise specifies, as a Snakemake
# workflow. The one entry point: `snakemake --cores 2` (or `make run`) runs the experiments
# listed under `run:` in config/config.yaml; see docs/pipeline.md for the rules and outputs.
from snakemake.utils import min_version

min_version("9.10")


configfile: "config/config.yaml"


# Experiment and source names as the schema allows them; chunks are numbered from 1.
wildcard_constraints:
    experiment=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    source=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    split=r"[A-Za-z0-9_-]+",
    k=r"[1-9][0-9]*",
    sweep=r"[A-Za-z0-9][A-Za-z0-9._-]*",


# Validation (schema + cross-field checks), experiments, sweeps and input functions.
include: "workflow/rules/common.smk"
include: "workflow/rules/common_stacked.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/cnn.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/stacked.smk"


# Light rules run on the submitting host, also under the Slurm profile (fetch needs the
# internet, which compute nodes often lack; logging talks to the tracking server).
localrules:
    all,
    fetch,
    write_config,
    write_trajectory,
    plot_filters,
    plot_curves,
    init_store,
    log_mlflow,
    summarize_sweep,
    plot_sweep_filters,
    log_sweep,
    write_stacked_config,
    write_finetune_trajectory,
    plot_stacked,
    log_stacked,


rule all:
    default_target: True
    input:
        final_targets(),
        sweep_targets(),
        stacked_targets(),


onstart:
    preflight()
    print(startup_message())


onsuccess:
    print(success_message())


onerror:
    print(error_message())
