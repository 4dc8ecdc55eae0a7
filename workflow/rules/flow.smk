def frames_reports_of_flow_shard(wildcards):
    """The frames shards that hold the videos of one flow shard. Both stages deal the same sorted list round-robin,
    so flow shard j needs only the frames shards s ≡ j (mod gcd(frames shards, flow shards)): one when one count
    divides the other. Depending on every frames shard made `snakemake -n` take ~70 s for Kinetics-sized shard
    counts (256 × 1024 edges); this takes ~9 s."""
    import math

    frames, flow = config["frames"]["shards"], config["flow"]["shards"]
    step = math.gcd(frames, flow)
    return expand(
        "data/{dataset}/reports/frames_{shard}.csv",
        dataset=wildcards.dataset,
        shard=range(int(wildcards.shard) % step, frames, step),
    )


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
