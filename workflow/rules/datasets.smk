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
    params:
        class_folders=config["frames"]["class_folders"],
    log:
        "logs/index/{dataset}.log",
    benchmark:
        "benchmarks/index/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep index {wildcards.dataset} {input}/splits {input}/videos {output}"
        " --class-folders {params.class_folders} > {log} 2>&1"


# Real datasets: download (or find the copy on disk) → extract → arrange into data/{dataset}/raw/{videos,splits}, the
# layout the synthetic rule writes. Downloads live in data/{dataset}/downloads (not an output: interrupted downloads
# resume from their .part files); the extracted tree is temporary (the videos in raw/ are hard links to it).
REAL_DATASET_PATTERN = "|".join(REAL_DATASETS)  # from prep.datasets (common.smk)


rule fetch_dataset:
    output:
        "data/{dataset}/sources.json",
    params:
        sources=lambda wildcards: json.dumps(config["sources"][wildcards.dataset], sort_keys=True),
        downloads="data/{dataset}/downloads",
        cache=f"--cache {config['sources']['cache']}" if config["sources"]["cache"] else "",
        s=config["sources"],
    wildcard_constraints:
        dataset=REAL_DATASET_PATTERN,
    log:
        "logs/fetch/{dataset}.log",
    benchmark:
        "benchmarks/fetch/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep fetch {wildcards.dataset} {output} --sources {params.sources:q} --downloads {params.downloads}"
        " {params.cache} --workers {params.s[workers]} --retries {params.s[retries]} --timeout {params.s[timeout]}"
        " --deadline {params.s[deadline]} > {log} 2>&1"


rule unpack_dataset:
    input:
        "data/{dataset}/sources.json",
    output:
        temp(directory("data/{dataset}/extracted")),
    params:
        s=config["sources"],
    threads: config["sources"]["extract_workers"]
    wildcard_constraints:
        dataset=REAL_DATASET_PATTERN,
    log:
        "logs/unpack/{dataset}.log",
    benchmark:
        "benchmarks/unpack/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep unpack {wildcards.dataset} {input} {output} --workers {threads}"
        " --max-ratio {params.s[max_expand_ratio]} --max-gb {params.s[max_expanded_gb]} > {log} 2>&1"


rule arrange_dataset:
    input:
        sources="data/{dataset}/sources.json",
        extracted="data/{dataset}/extracted",
    output:
        raw=directory("data/{dataset}/raw"),
        missing="data/{dataset}/missing.csv",
    params:
        max_missing=lambda wildcards: config["sources"][wildcards.dataset].get("max_missing_fraction", 0.0),
    wildcard_constraints:
        dataset=REAL_DATASET_PATTERN,
    log:
        "logs/arrange/{dataset}.log",
    benchmark:
        "benchmarks/arrange/{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m prep arrange {wildcards.dataset} {input.sources} {input.extracted} {output.raw}"
        " --missing {output.missing} --max-missing-fraction {params.max_missing} > {log} 2>&1"
