# Data: download a source once into resources/ (shared by experiments), write the resolved
# experiment config, and sample the training patches.


rule fetch:
    output:
        "resources/{source}/fetched-{split}.json",
    log:
        "logs/_fetch/{source}-{split}.log",
    benchmark:
        "benchmarks/_fetch/{source}-{split}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        mirrors=lambda wildcards: CONFIG["sources"]
        .get(wildcards.source, {})
        .get("mirrors", []),
        dest=lambda wildcards: f"resources/{wildcards.source}",
    message:
        "fetch {wildcards.source} ({wildcards.split}) into resources/{wildcards.source}"
    script:
        "../scripts/fetch.py"


rule write_config:
    output:
        "results/{experiment}/config.json",
    log:
        "logs/{experiment}/write_config.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        experiment=lambda wildcards: EXPERIMENTS[wildcards.experiment],
    script:
        "../scripts/write_config.py"


rule sample_patches:
    input:
        fetched=fetched_marker,
    output:
        "results/{experiment}/patches.npz",
    log:
        "logs/{experiment}/sample_patches.log",
    benchmark:
        "benchmarks/{experiment}/sample_patches.tsv"
    conda:
        ENV
    threads: resource("data", "threads")
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
    params:
        dataset=section("dataset"),
        patches=section("patches"),
        model=section("model"),
        seed=lambda wildcards: EXPERIMENTS[wildcards.experiment]["seed"],
        dtype=lambda wildcards: EXPERIMENTS[wildcards.experiment]["training"]["dtype"],
    message:
        "{wildcards.experiment}: prepare images and sample patches"
    script:
        "../scripts/sample_patches.py"
