rule synthetic_dataset:
    output:
        directory("data/synthetic/raw"),
    params:
        containers=",".join(config["synthetic"]["containers"]),
        s=config["synthetic"],
    log:
        "logs/synthetic_dataset.log",
    benchmark:
        "benchmarks/synthetic_dataset.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep synth {output} --seed {params.s[seed]} --num-classes {params.s[num_classes]}"
        " --videos-per-class {params.s[videos_per_class]} --frame-size {params.s[frame_size]}"
        " --min-frames {params.s[min_frames]} --max-frames {params.s[max_frames]} --fps {params.s[fps]}"
        " --test-fraction {params.s[test_fraction]} --containers {params.containers} > {log} 2>&1"


rule index:
    input:
        "data/{dataset}/raw",
    output:
        "data/{dataset}/index.parquet",
    log:
        "logs/index/{dataset}.log",
    benchmark:
        "benchmarks/index/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep index {wildcards.dataset} {input}/splits {input}/videos {output} > {log} 2>&1"
