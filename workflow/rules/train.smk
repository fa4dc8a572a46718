# Training as a chain of chunk jobs: chunk k warm-starts from chunk k-1's checkpoint. Each
# checkpoint is its own output, written atomically, so a killed chunk costs only itself and
# rerunning resumes at the first missing chunk. `finalize` turns the last checkpoint into the
# stable result files.


rule train_chunk:
    input:
        patches="results/{experiment}/patches.npz",
        trajectory="results/{experiment}/trajectory.json",
        # A gate, not a dependency of the numbers: training waits for a passing check, but a
        # rerun of the check (e.g. another gradcheck.bound) retrains nothing.
        gradcheck=ancient("results/{experiment}/gradcheck.json"),
        previous=previous_chunk,
    output:
        "results/{experiment}/chunks/{k}.npz",
    log:
        "logs/{experiment}/train_chunk-{k}.log",
    benchmark:
        "benchmarks/{experiment}/train_chunk-{k}.tsv"
    conda:
        ENV
    # Snakemake sets OPENBLAS_NUM_THREADS etc. to this number: training gets the cores.
    threads: resource("train", "threads")
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
        # Resources, unlike params, never trigger reruns: the chunk count (for the message)
        # and the progress output are not part of the trajectory.
        chunks_total=num_chunks,
        progress_every=progress_every,
        # training.device: cuda asks Slurm for one GPU (--gpus=1); 0 asks for none.
        gpu=lambda wildcards: int(
            EXPERIMENTS[wildcards.experiment]["training"]["device"] == "cuda"
        ),
    params:
        # Only the trajectory: what can change the numbers (see config/README.md).
        trajectory=trajectory,
    message:
        "{wildcards.experiment}: training chunk {wildcards.k} of {resources.chunks_total}"
    script:
        "../scripts/train_chunk.py"


rule finalize:
    input:
        chunks=all_chunks,
        patches="results/{experiment}/patches.npz",
    output:
        theta="results/{experiment}/theta.npz",
        history="results/{experiment}/history.tsv",
        summary="results/{experiment}/summary.json",
    log:
        "logs/{experiment}/finalize.log",
    benchmark:
        "benchmarks/{experiment}/finalize.tsv"
    conda:
        ENV
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        trajectory=trajectory,
    message:
        "{wildcards.experiment}: final theta, history and summary"
    script:
        "../scripts/finalize.py"
