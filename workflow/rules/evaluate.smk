rule evaluate:
    input:
        checkpoint="work/{model}_{dataset}_{mode}/final.pt",
        annotations="data/{dataset}/annotations",
    output:
        result="results/{model}_{dataset}_{mode}.json",
        scores="work/{model}_{dataset}_{mode}/test_scores.npz",
    params:
        root=stream_root,
        test_list=stream_list("test"),
    threads: config["train"]["threads"]
    log:
        "logs/evaluate/{model}_{dataset}_{mode}.log",
    benchmark:
        "benchmarks/evaluate/{model}_{dataset}_{mode}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.evaluate score --checkpoint {input.checkpoint} --list {params.test_list}"
        " --root {params.root} --out {output.result} --scores {output.scores}"
        " --model {wildcards.model} --dataset {wildcards.dataset} --workers {threads} > {log} 2>&1"


rule joint:
    input:
        rgb="work/{model}_{dataset}_rgb/test_scores.npz",
        flow="work/{model}_{dataset}_flow/test_scores.npz",
    output:
        "results/{model}_{dataset}_joint.json",
    params:
        weights=f"{config['fusion']['rgb']} {config['fusion']['flow']}",
    log:
        "logs/joint/{model}_{dataset}.log",
    benchmark:
        "benchmarks/joint/{model}_{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.evaluate fuse --rgb {input.rgb} --flow {input.flow} --weights {params.weights}"
        " --model {wildcards.model} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule summary:
    input:
        all_results(),
    output:
        csv="results/summary.csv",
        markdown="results/summary.md",
    log:
        "logs/summary.log",
    benchmark:
        "benchmarks/summary.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.evaluate summary {input} --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"
