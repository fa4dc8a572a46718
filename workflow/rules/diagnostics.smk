# Per-unit diagnostics: what each hidden unit responds to, measured on the training examples
# from the final theta. Params: the trajectory (as for the figures) and the top-level
# `diagnostics` section, a param of this rule only, so changing it recomputes the diagnostics
# (and their MLflow logging) and nothing else.


rule diagnose:
    input:
        theta="results/{experiment}/theta.npz",
        patches="results/{experiment}/patches.npz",
    output:
        # File names as sparseae.pipeline.experiment.diagnose writes them; the JSON is written last.
        json="results/{experiment}/diagnostics.json",
        png=report(
            "results/{experiment}/units.png",
            caption="../report/units.rst",
            category="Filters",
            labels={"experiment": "{experiment}", "figure": "units and top examples"},
        ),
    log:
        "logs/{experiment}/diagnose.log",
    benchmark:
        "benchmarks/{experiment}/diagnose.tsv"
    conda:
        ENV
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        trajectory=trajectory,
        # Sorted: the order keys were written in must not look like a change to Snakemake.
        settings=dict(sorted(CONFIG["diagnostics"].items())),
    message:
        "{wildcards.experiment}: per-unit diagnostics (top examples, alignment, contrast)"
    script:
        "../scripts/diagnose.py"
