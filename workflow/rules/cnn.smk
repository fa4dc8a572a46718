# Convolution and pooling (experiments with a `cnn` section): the learned features convolved
# over whole labeled images and mean-pooled, features_per_chunk at a time (one job per chunk),
# then softmax on the pooled features. Params split as config/README.md says: a pooling
# setting reruns the chunks and the classifier, a softmax setting the classifier alone.


rule convolve_pool:
    input:
        fetched=cnn_fetched,
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
        fetched=cnn_fetched,
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
