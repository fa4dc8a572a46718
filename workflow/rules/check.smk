# Gradient check on a small sub-problem of the experiment's own data; training waits for it,
# so a failed check stops the pipeline before any chunk runs. Training takes it as an
# ancient() input: rerunning the check with other settings does not retrain.


rule check_gradient:
    input:
        patches="results/{experiment}/patches.npz",
    output:
        "results/{experiment}/gradcheck.json",
    log:
        "logs/{experiment}/check_gradient.log",
    benchmark:
        "benchmarks/{experiment}/check_gradient.tsv"
    conda:
        ENV
    threads: resource("check", "threads")
    resources:
        mem_mb=resource("check", "mem_mb"),
        runtime=resource("check", "runtime"),
    params:
        trajectory=trajectory,
        gradcheck=section("gradcheck"),
    message:
        "{wildcards.experiment}: gradient check"
    script:
        "../scripts/check_gradient.py"
