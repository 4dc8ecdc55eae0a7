# Report artefacts for `snakemake --report report.html` (or report.zip): every rule calls `python -m train.report`,
# every output is wrapped in report() with a caption from workflow/report/. `rule all` pulls them in through
# report_targets() (common.smk), so a finished run holds everything the report shows.


rule report_table:
    input:
        all_results(),
    output:
        csv=report(
            "report/results.csv",
            caption="../report/results.rst",
            category="1. Results",
            labels={"table": "results (CSV)"},
        ),
        html=report(
            "report/results.html",
            caption="../report/results.rst",
            category="1. Results",
            labels={"table": "results"},
        ),
    log:
        "logs/report/table.log",
    benchmark:
        "benchmarks/report/table.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.report table {input} --csv {output.csv} --html {output.html} > {log} 2>&1"


rule report_curves:
    input:
        # log.jsonl is written beside final.pt, one line per epoch
        "work/{model}_{dataset}_{mode}/final.pt",
    output:
        report(
            "report/curves/{model}_{dataset}_{mode}.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="{dataset}",
            labels={"model": "{model}", "mode": "{mode}"},
        ),
    params:
        log="work/{model}_{dataset}_{mode}/log.jsonl",
    log:
        "logs/report/curves_{model}_{dataset}_{mode}.log",
    benchmark:
        "benchmarks/report/curves_{model}_{dataset}_{mode}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.report curves {params.log} --out {output} > {log} 2>&1"


rule report_classes:
    input:
        "results/{model}_{dataset}_{result_mode}.json",
    output:
        report(
            "report/classes/{model}_{dataset}_{result_mode}.png",
            caption="../report/classes.rst",
            category="3. Per-class accuracy",
            subcategory="{dataset}",
            labels={"model": "{model}", "mode": "{result_mode}"},
        ),
    wildcard_constraints:
        result_mode="rgb|flow|joint",
    log:
        "logs/report/classes_{model}_{dataset}_{result_mode}.log",
    benchmark:
        "benchmarks/report/classes_{model}_{dataset}_{result_mode}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.report classes {input} --out {output} > {log} 2>&1"


rule report_dataset:
    input:
        "data/{dataset}/annotations",
    output:
        plot=report(
            "report/datasets/{dataset}_stats.png",
            caption="../report/dataset.rst",
            category="4. Datasets",
            subcategory="{dataset}",
            labels={"figure": "videos per class and split, frame counts"},
        ),
        html=report(
            "report/datasets/{dataset}_stats.html",
            caption="../report/dataset.rst",
            category="4. Datasets",
            subcategory="{dataset}",
            labels={"figure": "counts, missing and quarantined videos"},
        ),
    log:
        "logs/report/dataset_{dataset}.log",
    benchmark:
        "benchmarks/report/dataset_{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.report dataset {input}/manifest.parquet --plot {output.plot} --html {output.html}"
        " --title {wildcards.dataset} > {log} 2>&1"


rule report_flow:
    input:
        annotations="data/{dataset}/annotations",
        check="data/{dataset}/check.txt",
    output:
        report(
            "report/flow/{dataset}.png",
            caption="../report/flow.rst",
            category="4. Datasets",
            subcategory="{dataset}",
            labels={"figure": "sample frames and flow"},
        ),
    params:
        frames=lambda wildcards: rgb_root(wildcards.dataset),
        flow="data/{dataset}/flow",
    log:
        "logs/report/flow_{dataset}.log",
    benchmark:
        "benchmarks/report/flow_{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.report flow {input.annotations}/manifest.parquet --frames {params.frames}"
        " --flow {params.flow} --out {output} --title {wildcards.dataset} > {log} 2>&1"
