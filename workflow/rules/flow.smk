import math


rule flow:
    input:
        # only the frames shards holding this flow shard's videos: both stages deal one sorted list round-robin,
        # so flow shard j needs frames shards s ≡ j (mod gcd) — with every frames shard as input of every flow
        # shard, `snakemake -n` took ~70 s for Kinetics-sized shard counts (256 × 1024 edges); now ~9 s
        frames=lambda wildcards: expand(
            "data/{dataset}/reports/frames_{shard}.csv",
            dataset=wildcards.dataset,
            shard=range(
                int(wildcards.shard) % math.gcd(config["frames"]["shards"], config["flow"]["shards"]),
                config["frames"]["shards"],
                math.gcd(config["frames"]["shards"], config["flow"]["shards"]),
            ),
        ),
        index="data/{dataset}/index.parquet",
    output:
        "data/{dataset}/reports/flow_{shard}.csv",
    params:
        src="data/{dataset}/rawframes",
        out="data/{dataset}/flow",
        shards=config["flow"]["shards"],
        f=config["flow"],
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
        " --algorithm {params.f[algorithm]} --bound {params.f[bound]} --report {output} > {log} 2>&1"
