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
        md5=lambda wildcards: CONFIG["sources"].get(wildcards.source, {}).get("md5", {}),
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
        experiment=lambda wildcards: EXPERIMENTS[wildcards.experiment].to_dict(),
    script:
        "../scripts/write_config.py"


# The trajectory (the settings that can change the numbers) as a file of its own: training
# depends on it, so a trajectory change retrains through a plain input, while the gradient
# check stays an ancient() gate (Snakemake does not look at a job's own params once a job
# upstream of it must rerun, so the gate alone would hide a trajectory change from -n).
rule write_trajectory:
    output:
        "results/{experiment}/trajectory.json",
    log:
        "logs/{experiment}/write_trajectory.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        trajectory=trajectory,
    script:
        "../scripts/write_trajectory.py"


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
        data=data_settings,
        # The contents of a user's image folder, which Snakemake cannot see as a file: a
        # changed, added or removed image changes this checksum and so resamples.
        folder_checksum=folder_checksum,
    message:
        "{wildcards.experiment}: prepare images and sample patches"
    script:
        "../scripts/sample_patches.py"
