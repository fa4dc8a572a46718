# MLflow: the store and the experiments of `run` are created once, before parallel log jobs
# (concurrent first-time creation of an sqlite store can corrupt it). Training outputs never
# depend on these rules: with the tracking server down, results are still written, and
# rerunning `snakemake` later fills in what is missing.


rule init_store:
    output:
        TRACKING_MARKER,
    log:
        "logs/_tracking/init_store.log",
    benchmark:
        "benchmarks/_tracking/init_store.tsv"
    # First in line, and not counted against the cores: creating a store is mostly the
    # MLflow import and sqlite schema migrations waiting on disk, and training (which takes
    # all cores) should not wait for it. A local rule, so no cluster job asks for 0 CPUs.
    priority: 100
    conda:
        ENV
    threads: 0
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        uri=TRACKING_URI,
        experiments=sorted({experiment_mlflow_name(name) for name in RUN + RUN_STACKED}),
    message:
        "MLflow: prepare the tracking store {params.uri}"
    script:
        "../scripts/init_store.py"


rule log_mlflow:
    input:
        # Not ancient(): with Snakemake 9.27, an ancient() input whose producer must rerun
        # (init_store after `run` changed) left every missing job of the new experiments
        # unscheduled. Re-logging a finished experiment after the marker changes is cheap
        # and idempotent (nothing is duplicated).
        store=TRACKING_MARKER,
        results=lambda wildcards: [
            f"results/{wildcards.experiment}/{f}" for f in RESULT_FILES
        ],
        chunks=all_chunks,
        # evaluation.json and the confusion figures of an evaluated experiment (none else).
        evaluation=evaluation_outputs,
        cnn=cnn_outputs,
        logs=rule_logs,
    output:
        "results/{experiment}/mlflow.json",
    log:
        "logs/{experiment}/log_mlflow.log",
    benchmark:
        "benchmarks/{experiment}/log_mlflow.tsv"
    conda:
        ENV
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        uri=TRACKING_URI,
        mlflow_experiment=lambda wildcards: experiment_mlflow_name(wildcards.experiment),
        result_dir=lambda wildcards: f"results/{wildcards.experiment}",
        log_dir=lambda wildcards: f"logs/{wildcards.experiment}",
        tags=lambda wildcards: mlflow_tags(wildcards.experiment),
        chunks=num_chunks,
    message:
        "{wildcards.experiment}: log to MLflow ({params.uri})"
    script:
        "../scripts/log_mlflow.py"
