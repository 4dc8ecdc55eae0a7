rule annotations:
    input:
        index="data/{dataset}/index.parquet",
        frames=shard_reports("rgb"),
        flow=shard_reports("flow"),
    output:
        directory("data/{dataset}/annotations"),
    params:
        frames=lambda wildcards: rgb_root(wildcards.dataset),
        flow="data/{dataset}/flow",
    log:
        "logs/annotations/{dataset}.log",
    benchmark:
        "benchmarks/annotations/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep annotations {wildcards.dataset} {input.index} {output}"
        " --frames-reports {input.frames} --flow-reports {input.flow}"
        " --frames {params.frames} --flow {params.flow} > {log} 2>&1"


rule check:
    input:
        "data/{dataset}/annotations",
    output:
        "data/{dataset}/check.txt",
    params:
        frames=lambda wildcards: rgb_root(wildcards.dataset),
        flow="data/{dataset}/flow",
    log:
        "logs/check/{dataset}.log",
    benchmark:
        "benchmarks/check/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep check {input} --frames {params.frames} --flow {params.flow}"
        " --out {output} > {log} 2>&1"
