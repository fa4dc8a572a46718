# Figures, tagged for `snakemake --report` with the captions in workflow/report/. The report
# opens on the page the closing message wrote for this config file (each experiment's numbers
# and filter grid; `make report` passes its .json as --report-metadata), else workflow.rst.
_config_name = Path(
    workflow.configfiles[0]
).stem  # command-line config files come first
REPORT_PAGE = Path(f"results/_report/{_config_name}.rst").resolve()


report: str(REPORT_PAGE) if REPORT_PAGE.exists() else "../report/workflow.rst"


rule plot_filters:
    input:
        unpack(fitted_zca),
        theta="results/{experiment}/theta.npz",
    output:
        array="results/{experiment}/filters_array.npy",
        png=report(
            "results/{experiment}/filters.png",
            caption="../report/filters.rst",
            category="Filters",
            labels={"experiment": "{experiment}", "figure": "filter grid"},
        ),
    log:
        "logs/{experiment}/plot_filters.log",
    benchmark:
        "benchmarks/{experiment}/plot_filters.tsv"
    conda:
        ENV
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        trajectory=trajectory,
    script:
        "../scripts/plot_filters.py"


rule plot_curves:
    input:
        history="results/{experiment}/history.tsv",
        summary="results/{experiment}/summary.json",
    output:
        cost=report(
            "results/{experiment}/cost_curve.png",
            caption="../report/cost_curve.rst",
            category="Training",
            labels={"experiment": "{experiment}", "figure": "cost curve"},
        ),
        rhohat=report(
            "results/{experiment}/rhohat.png",
            caption="../report/rhohat.rst",
            category="Sparsity",
            labels={"experiment": "{experiment}", "figure": "mean activations"},
        ),
    log:
        "logs/{experiment}/plot_curves.log",
    benchmark:
        "benchmarks/{experiment}/plot_curves.tsv"
    conda:
        ENV
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        rho=lambda wildcards: EXPERIMENTS[wildcards.experiment]["model"]["rho"],
    script:
        "../scripts/plot_curves.py"
