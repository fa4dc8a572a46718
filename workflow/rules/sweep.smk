# Sweeps: one table over every member of a sweep (TSV + HTML + PNG), a contact sheet of the
# members' filters, and a parent MLflow run holding them with the member runs nested below it
# (members log into the sweep's MLflow experiment, so they compare in one runs table). The table depends only on the members' result
# files, so a tracking failure never withholds it; log_sweep runs after the members' own
# log_mlflow jobs.


rule summarize_sweep:
    input:
        configs=sweep_member_files("config.json"),
        summaries=sweep_member_files("summary.json"),
        gradchecks=sweep_member_files("gradcheck.json"),
        diagnostics=sweep_member_files("diagnostics.json"),
    output:
        tsv=report(
            "results/sweeps/{sweep}/summary.tsv",
            caption="../report/sweep_table.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}", "figure": "table"},
        ),
        html="results/sweeps/{sweep}/summary.html",
        png=report(
            "results/sweeps/{sweep}/summary.png",
            caption="../report/sweep_summary.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}", "figure": "final cost and rhohat"},
        ),
    log:
        "logs/_sweeps/{sweep}/summarize_sweep.log",
    benchmark:
        "benchmarks/_sweeps/{sweep}/summarize_sweep.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        members=sweep_members,
        parameters=sweep_parameters,
    message:
        "sweep {wildcards.sweep}: summary table of its members"
    script:
        "../scripts/summarize_sweep.py"


rule plot_sweep_filters:
    input:
        tsv="results/sweeps/{sweep}/summary.tsv",
        filters=sweep_member_files("filters.png"),
    output:
        report(
            "results/sweeps/{sweep}/filters.png",
            caption="../report/sweep_filters.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}", "figure": "filters of every member"},
        ),
    log:
        "logs/_sweeps/{sweep}/plot_sweep_filters.log",
    benchmark:
        "benchmarks/_sweeps/{sweep}/plot_sweep_filters.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "sweep {wildcards.sweep}: contact sheet of the members' filters"
    script:
        "../scripts/plot_sweep_filters.py"


rule log_sweep:
    input:
        # Plain input, not ancient(): see log_mlflow in tracking.smk.
        store=TRACKING_MARKER,
        members=sweep_member_files("mlflow.json"),
        tsv="results/sweeps/{sweep}/summary.tsv",
        html="results/sweeps/{sweep}/summary.html",
        png="results/sweeps/{sweep}/summary.png",
        filters="results/sweeps/{sweep}/filters.png",
    output:
        "results/sweeps/{sweep}/mlflow.json",
    log:
        "logs/_sweeps/{sweep}/log_sweep.log",
    benchmark:
        "benchmarks/_sweeps/{sweep}/log_sweep.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        uri=TRACKING_URI,
        mlflow_experiment=lambda wildcards: experiment_mlflow_name(wildcards.sweep),
        member_dirs=lambda wildcards: [f"results/{m}" for m in sweep_members(wildcards)],
        settings=sweep_settings,
    message:
        "sweep {wildcards.sweep}: parent MLflow run, members tagged ({params.uri})"
    script:
        "../scripts/log_sweep.py"
