# Stacked sparse autoencoders with fine-tuning (experiments under `stacked_experiments`):
# greedy layer-wise pretraining (layer 1 on the images, layer l on layer l-1's features, each
# a chain of chunk jobs with checkpoints like train_chunk), softmax on the last layer's
# features, a gradient check of the fine-tuning cost, fine-tuning of the whole stack in
# chunks, then evaluation, figures and MLflow. Files: sparseae.pipeline.stacked's docstring.


wildcard_constraints:
    layer=r"[1-9]",
    part=r"train|test",


rule write_stacked_config:
    output:
        "results/{experiment}/stacked_config.json",
    log:
        "logs/{experiment}/write_stacked_config.log",
    benchmark:
        "benchmarks/{experiment}/write_stacked_config.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=stacked_resource("light", "mem_mb"),
        runtime=stacked_resource("light", "runtime"),
    params:
        experiment=lambda wildcards: STACKED[wildcards.experiment].to_dict(),
    script:
        "../scripts/write_stacked_config.py"


# Fine-tuning's trajectory as a file: fine-tuning depends on it, so a trajectory change refits
# even when the gradient check (an ancient() gate of fine-tuning) reruns at the same time.
rule write_finetune_trajectory:
    output:
        "results/{experiment}/finetune/trajectory.json",
    log:
        "logs/{experiment}/write_finetune_trajectory.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=stacked_resource("light", "mem_mb"),
        runtime=stacked_resource("light", "runtime"),
    params:
        trajectory=stacked_trajectory("finetune"),
    script:
        "../scripts/write_finetune_trajectory.py"


rule prepare_stacked_data:
    input:
        fetched=stacked_fetched,
    output:
        "results/{experiment}/stacked_{part}.npz",
    log:
        "logs/{experiment}/prepare_stacked_data-{part}.log",
    benchmark:
        "benchmarks/{experiment}/prepare_stacked_data-{part}.tsv"
    conda:
        ENV
    threads: stacked_resource("data", "threads")
    resources:
        mem_mb=stacked_resource("data", "mem_mb"),
        runtime=stacked_resource("data", "runtime"),
    params:
        source=lambda wildcards: STACKED[wildcards.experiment]["dataset"]["source"],
        images=lambda wildcards: STACKED[wildcards.experiment]["dataset"][
            wildcards.part
        ],
    message:
        "{wildcards.experiment}: {wildcards.part} digits"
    script:
        "../scripts/prepare_stacked_data.py"


rule check_stacked_gradient:
    input:
        data="results/{experiment}/stacked_train.npz",
    output:
        "results/{experiment}/stacked_gradcheck.json",
    log:
        "logs/{experiment}/check_stacked_gradient.log",
    benchmark:
        "benchmarks/{experiment}/check_stacked_gradient.tsv"
    conda:
        ENV
    threads: stacked_resource("check", "threads")
    resources:
        mem_mb=stacked_resource("check", "mem_mb"),
        runtime=stacked_resource("check", "runtime"),
    params:
        settings=stacked_gradcheck,
    message:
        "{wildcards.experiment}: gradient check of the fine-tuning cost on a small stack"
    script:
        "../scripts/check_stacked_gradient.py"


rule train_layer_chunk:
    input:
        data=layer_input,
        previous=previous_layer_chunk,
    output:
        "results/{experiment}/layer{layer}/chunks/{k}.npz",
    log:
        "logs/{experiment}/train_layer_chunk-{layer}-{k}.log",
    benchmark:
        "benchmarks/{experiment}/train_layer_chunk-{layer}-{k}.tsv"
    conda:
        ENV
    threads: stacked_resource("train", "threads")
    resources:
        mem_mb=stacked_resource("train", "mem_mb"),
        runtime=stacked_resource("train", "runtime"),
        # Progress lines only: a resource, unlike a param, never triggers a rerun.
        progress_every=lambda wildcards: STACKED[wildcards.experiment]["pretraining"][
            "progress_every"
        ],
    params:
        trajectory=stacked_trajectory("layer"),
    message:
        "{wildcards.experiment}: pretraining layer {wildcards.layer}, chunk {wildcards.k}"
    script:
        "../scripts/train_layer_chunk.py"


rule finalize_layer:
    input:
        chunks=layer_chunks,
        data=layer_input,
    output:
        theta="results/{experiment}/layer{layer}/theta.npz",
        features="results/{experiment}/layer{layer}/features.npz",
    log:
        "logs/{experiment}/finalize_layer-{layer}.log",
    benchmark:
        "benchmarks/{experiment}/finalize_layer-{layer}.tsv"
    conda:
        ENV
    threads: stacked_resource("light", "threads")
    resources:
        mem_mb=stacked_resource("data", "mem_mb"),
        runtime=stacked_resource("light", "runtime"),
    params:
        trajectory=stacked_trajectory("layer"),
    message:
        "{wildcards.experiment}: layer {wildcards.layer}'s parameters and features"
    script:
        "../scripts/finalize_layer.py"


rule train_stacked_softmax:
    input:
        features=last_features,
        data="results/{experiment}/stacked_train.npz",
    output:
        "results/{experiment}/softmax.npz",
    log:
        "logs/{experiment}/train_stacked_softmax.log",
    benchmark:
        "benchmarks/{experiment}/train_stacked_softmax.tsv"
    conda:
        ENV
    threads: stacked_resource("evaluate", "threads")
    resources:
        mem_mb=stacked_resource("evaluate", "mem_mb"),
        runtime=stacked_resource("evaluate", "runtime"),
    params:
        trajectory=stacked_trajectory("softmax"),
    message:
        "{wildcards.experiment}: softmax regression on the last layer's features"
    script:
        "../scripts/train_stacked_softmax.py"


rule finetune_chunk:
    input:
        data="results/{experiment}/stacked_train.npz",
        # A gate, not a dependency of the numbers: fine-tuning waits for a passing check, but
        # a rerun of the check alone (e.g. another gradcheck.bound) redoes no fine-tuning.
        gradcheck=ancient("results/{experiment}/stacked_gradcheck.json"),
        trajectory="results/{experiment}/finetune/trajectory.json",
        layers=layer_thetas,
        softmax="results/{experiment}/softmax.npz",
        previous=previous_finetune_chunk,
    output:
        "results/{experiment}/finetune/chunks/{k}.npz",
    log:
        "logs/{experiment}/finetune_chunk-{k}.log",
    benchmark:
        "benchmarks/{experiment}/finetune_chunk-{k}.tsv"
    conda:
        ENV
    # L-BFGS and the fine-tuning cost run on one BLAS thread (bit-identical on any machine).
    threads: 1
    resources:
        mem_mb=stacked_resource("train", "mem_mb"),
        runtime=stacked_resource("train", "runtime"),
        progress_every=lambda wildcards: STACKED[wildcards.experiment]["finetuning"][
            "progress_every"
        ],
    params:
        trajectory=stacked_trajectory("finetune"),
    message:
        "{wildcards.experiment}: fine-tuning the whole stack, chunk {wildcards.k}"
    script:
        "../scripts/finetune_chunk.py"


rule finalize_stacked:
    input:
        layers=layer_thetas,
        softmax="results/{experiment}/softmax.npz",
        chunks=finetune_chunks,
    output:
        "results/{experiment}/stack.npz",
    log:
        "logs/{experiment}/finalize_stacked.log",
    benchmark:
        "benchmarks/{experiment}/finalize_stacked.tsv"
    conda:
        ENV
    threads: stacked_resource("light", "threads")
    resources:
        mem_mb=stacked_resource("light", "mem_mb"),
        runtime=stacked_resource("light", "runtime"),
    params:
        trajectory=stacked_trajectory("finetune"),
    script:
        "../scripts/finalize_stacked.py"


rule evaluate_stacked:
    input:
        train="results/{experiment}/stacked_train.npz",
        test="results/{experiment}/stacked_test.npz",
        stack="results/{experiment}/stack.npz",
        chunks=all_stage_chunks,
    output:
        evaluation="results/{experiment}/stacked_evaluation.json",
        confusion_before=report(
            "results/{experiment}/confusion_before.png",
            caption="../report/stacked_confusion.rst",
            category="Stacked autoencoder",
            labels={
                "experiment": "{experiment}",
                "figure": "confusion, before fine-tuning",
            },
        ),
        confusion_after=report(
            "results/{experiment}/confusion_after.png",
            caption="../report/stacked_confusion.rst",
            category="Stacked autoencoder",
            labels={
                "experiment": "{experiment}",
                "figure": "confusion, after fine-tuning",
            },
        ),
    log:
        "logs/{experiment}/evaluate_stacked.log",
    benchmark:
        "benchmarks/{experiment}/evaluate_stacked.tsv"
    conda:
        ENV
    threads: stacked_resource("evaluate", "threads")
    resources:
        mem_mb=stacked_resource("evaluate", "mem_mb"),
        runtime=stacked_resource("evaluate", "runtime"),
    params:
        trajectory=stacked_trajectory("finetune"),
        stages=stage_chunks,
    message:
        "{wildcards.experiment}: test accuracy before and after fine-tuning"
    script:
        "../scripts/evaluate_stacked.py"


rule plot_stacked:
    input:
        stack="results/{experiment}/stack.npz",
        chunks=all_stage_chunks,
    output:
        filters_before=report(
            "results/{experiment}/filters_before.png",
            caption="../report/stacked_filters.rst",
            category="Stacked autoencoder",
            labels={
                "experiment": "{experiment}",
                "figure": "layer 1, before fine-tuning",
            },
        ),
        filters_after=report(
            "results/{experiment}/filters_after.png",
            caption="../report/stacked_filters.rst",
            category="Stacked autoencoder",
            labels={
                "experiment": "{experiment}",
                "figure": "layer 1, after fine-tuning",
            },
        ),
        curves=report(
            "results/{experiment}/stacked_cost_curves.png",
            caption="../report/stacked_curves.rst",
            category="Stacked autoencoder",
            labels={"experiment": "{experiment}", "figure": "cost curves"},
        ),
    log:
        "logs/{experiment}/plot_stacked.log",
    benchmark:
        "benchmarks/{experiment}/plot_stacked.tsv"
    conda:
        ENV
    threads: stacked_resource("light", "threads")
    resources:
        mem_mb=stacked_resource("light", "mem_mb"),
        runtime=stacked_resource("light", "runtime"),
    params:
        stages=stage_chunks,
        hidden_sizes=lambda wildcards: STACKED[wildcards.experiment]["layers"][
            "hidden_sizes"
        ],
    script:
        "../scripts/plot_stacked.py"


rule log_stacked:
    input:
        store=TRACKING_MARKER,
        results=lambda wildcards: [
            f"results/{wildcards.experiment}/{f}" for f in STACKED_FILES
        ],
        chunks=all_stage_chunks,
        logs=stacked_logs,
    output:
        "results/{experiment}/stacked_mlflow.json",
    log:
        "logs/{experiment}/log_stacked.log",
    benchmark:
        "benchmarks/{experiment}/log_stacked.tsv"
    conda:
        ENV
    threads: stacked_resource("light", "threads")
    resources:
        mem_mb=stacked_resource("light", "mem_mb"),
        runtime=stacked_resource("light", "runtime"),
    params:
        uri=TRACKING_URI,
        mlflow_experiment=lambda wildcards: experiment_mlflow_name(wildcards.experiment),
        stages=stage_chunks,
        log_dir=lambda wildcards: f"logs/{wildcards.experiment}",
    message:
        "{wildcards.experiment}: log the stacked experiment to MLflow ({params.uri})"
    script:
        "../scripts/log_stacked.py"
