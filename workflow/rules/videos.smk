# The videos storage (config `storage: {<dataset>: videos}`): each source video re-encoded once for training,
# data/{dataset}/videos/<class>/<video>.mp4; its shard reports stand in for the frames reports (decoded counts).
rule reencode:
    input:
        raw="data/{dataset}/raw",
        index="data/{dataset}/index.parquet",
    output:
        "data/{dataset}/reports/reencode_{shard}.csv",
    params:
        out="data/{dataset}/videos",
        shards=lambda wildcards: prep_jobs(wildcards.dataset, "reencode", "shards"),
        size=frames_size,  # the frame size the dataset's recipes assume, as for rawframes
        encoder=reencode_settings,  # keyframe interval and B-frames for the recipes that read it; a change re-encodes
    threads: prep_threads("reencode")
    log:
        "logs/reencode/{dataset}_{shard}.log",
    benchmark:
        "benchmarks/reencode/{dataset}_{shard}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep reencode {input.raw}/videos {params.out} --index {input.index}"
        " --shard {wildcards.shard} --num-shards {params.shards} --workers {threads}"
        " {params.size} {params.encoder} --report {output} > {log} 2>&1"
