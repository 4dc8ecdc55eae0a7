rule flow:
    input:
        frames=frames_reports_of_flow_shard,
        index="data/{dataset}/index.parquet",
    output:
        "data/{dataset}/reports/flow_{shard}.csv",
    params:
        src="data/{dataset}/rawframes",
        out="data/{dataset}/flow",
        shards=config["flow"]["shards"],
        f=config["flow"],
        pack=PACK_OPTION,
        naming=config["frames"]["naming"],
    threads: config["flow"]["workers"]
    log:
        "logs/flow/{dataset}_{shard}.log",
    benchmark:
        "benchmarks/flow/{dataset}_{shard}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep flow {params.src} {params.out} --index {input.index}"
        " --shard {wildcards.shard} --num-shards {params.shards} --workers {threads}"
        " --algorithm {params.f[algorithm]} --bound {params.f[bound]} {params.pack}"
        " --naming {params.naming} --flow-naming {params.f[naming]} --report {output} > {log} 2>&1"
