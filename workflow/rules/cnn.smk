# Convolution and pooling (experiments with a `cnn` section): the labeled images read once,
# the learned features convolved over them and mean-pooled, features_per_chunk at a time (one
# job per chunk), then softmax on the pooled features. Params split as config/README.md says:
# an images setting reruns all, a pooling setting the chunks and the classifier, a softmax
# setting the classifier alone.


rule prepare_images:
    input:
        fetched=cnn_fetched,
    output:
        "results/{experiment}/cnn_images.npz",
    log:
        "logs/{experiment}/prepare_images.log",
    benchmark:
        "benchmarks/{experiment}/prepare_images.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        images=lambda wildcards: pooling_settings(wildcards)["images"],
        checksums=cnn_mat_checksums,
    message:
        "{wildcards.experiment}: read the labeled images to convolve"
    script:
        "../scripts/prepare_images.py"


rule convolve_pool:
    input:
        images="results/{experiment}/cnn_images.npz",
        theta="results/{experiment}/theta.npz",
        patches="results/{experiment}/patches.npz",
    output:
        "results/{experiment}/pooled/{k}.npz",
    log:
        "logs/{experiment}/convolve_pool-{k}.log",
    benchmark:
        "benchmarks/{experiment}/convolve_pool-{k}.tsv"
    conda:
        ENV
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
        chunks_total=num_pooled_chunks,
    params:
        trajectory=trajectory,
        pooling=pooling_settings,
    message:
        "{wildcards.experiment}: convolve and pool features, chunk {wildcards.k} of {resources.chunks_total}"
    script:
        "../scripts/convolve_pool.py"


rule classify_pooled:
    input:
        images="results/{experiment}/cnn_images.npz",
        chunks=pooled_chunks,
    output:
        "results/{experiment}/cnn_evaluation.json",
    log:
        "logs/{experiment}/classify_pooled.log",
    benchmark:
        "benchmarks/{experiment}/classify_pooled.tsv"
    conda:
        ENV
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        trajectory=trajectory,
        pooling=pooling_settings,
        softmax=cnn_softmax,
    message:
        "{wildcards.experiment}: softmax on the pooled features and on raw pixels"
    script:
        "../scripts/classify_pooled.py"
