# Sweeps: one table over every member of a sweep (TSV + HTML + PNG), and a parent MLflow run
# holding it with the member runs tagged. The table depends only on the members' result
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


rule log_sweep:
    input:
        # Plain input, not ancient(): see log_mlflow in tracking.smk.
        store=TRACKING_MARKER,
        members=sweep_member_files("mlflow.json"),
        tsv="results/sweeps/{sweep}/summary.tsv",
        html="results/sweeps/{sweep}/summary.html",
        png="results/sweeps/{sweep}/summary.png",
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
