# Self-taught evaluation (experiments with evaluation.enabled, digit sources): encode the
# labeled digits with the trained hidden layer and compare softmax regression on those
# features with softmax on the raw pixels. The unlabeled digits (dataset.digits) are the
# autoencoder's training data; the job checks that patches.npz holds exactly those images.


rule evaluate:
    input:
        fetched=fetched_marker,
        theta="results/{experiment}/theta.npz",
        patches="results/{experiment}/patches.npz",
    output:
        # File names are sparseae.analysis.evaluate.save_evaluation's; the JSON is written last.
        evaluation="results/{experiment}/evaluation.json",
        confusion_features=report(
            "results/{experiment}/confusion_features.png",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"experiment": "{experiment}", "figure": "confusion, features"},
        ),
        confusion_raw=report(
            "results/{experiment}/confusion_raw.png",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"experiment": "{experiment}", "figure": "confusion, raw pixels"},
        ),
    log:
        "logs/{experiment}/evaluate.log",
    benchmark:
        "benchmarks/{experiment}/evaluate.tsv"
    conda:
        ENV
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        trajectory=trajectory,
        evaluation=section("evaluation"),
    message:
        "{wildcards.experiment}: self-taught evaluation (softmax on features vs raw pixels)"
    script:
        "../scripts/evaluate.py"
