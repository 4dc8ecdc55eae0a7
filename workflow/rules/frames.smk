rule frames:
    input:
        raw="data/{dataset}/raw",
        index="data/{dataset}/index.parquet",
    output:
        "data/{dataset}/reports/frames_{shard}.csv",
    params:
        out="data/{dataset}/rawframes",
        shards=lambda wildcards: prep_jobs(wildcards.dataset, "frames", "shards"),
        size=frames_size,
        quality=config["frames"]["quality"],
        pack=pack_option,
        naming=config["frames"]["naming"],
    threads: prep_threads("frames")
    log:
        "logs/frames/{dataset}_{shard}.log",
    benchmark:
        "benchmarks/frames/{dataset}_{shard}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep frames {input.raw}/videos {params.out} --index {input.index}"
        " --shard {wildcards.shard} --num-shards {params.shards} --workers {threads}"
        " {params.size} --quality {params.quality} {params.pack} --naming {params.naming}"
        " --report {output} > {log} 2>&1"
