rule flow:
    input:
        rgb=rgb_reports_of_flow_shard,
        index="data/{dataset}/index.parquet",
    output:
        "data/{dataset}/reports/flow_{shard}.csv",
    params:
        src=lambda wildcards: rgb_root(wildcards.dataset),
        out="data/{dataset}/flow",
        shards=lambda wildcards: prep_jobs(wildcards.dataset, "flow", "shards"),
        f=config["flow"],
        pack=pack_option,
        bound=f"--bound {config['flow']['bound']}" if config["flow"]["bound"] else "",
        tvl1=tvl1_option,
    threads: prep_threads("flow")
    resources:
        gpu=flow_gpus(),
    log:
        "logs/flow/{dataset}_{shard}.log",
    benchmark:
        "benchmarks/flow/{dataset}_{shard}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep flow {params.src} {params.out} --index {input.index}"
        " --shard {wildcards.shard} --num-shards {params.shards} --workers {threads}"
        " --algorithm {params.f[algorithm]} --backend {params.f[backend]} --device {params.f[device]}"
        " {params.bound} {params.tvl1} {params.pack} --flow-naming {params.f[naming]} --report {output} > {log} 2>&1"
