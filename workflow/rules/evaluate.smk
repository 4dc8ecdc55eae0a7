rule evaluate:
    input:
        checkpoint="work/{model}_{dataset}_{mode}/final.pt",
        annotations="data/{dataset}/annotations",
    output:
        result="results/{model}_{dataset}_{mode}.json",
        scores="work/{model}_{dataset}_{mode}/test_scores.npz",
    params:
        launch=torchrun_launch,
        root=stream_root,
        test_list=stream_list("test"),
        workers=threads_per_process,
        naming=stream_naming,
        flow=f"--flow-algorithm {config['flow']['algorithm']} --flow-backend {config['flow']['backend']}"
        f" --flow-bound {config['flow']['bound']}",
    threads: config["train"]["threads"]
    resources:
        **train_resources(),
    log:
        "logs/evaluate/{model}_{dataset}_{mode}.log",
    benchmark:
        "benchmarks/evaluate/{model}_{dataset}_{mode}.tsv"
    conda:
        PREP_ENV
    shell:
        "{params.launch} -m train.evaluate score --checkpoint {input.checkpoint} --list {params.test_list}"
        " --root {params.root} --out {output.result} --scores {output.scores} --naming {params.naming}"
        " {params.flow} --model {wildcards.model} --dataset {wildcards.dataset} --workers {params.workers}"
        " > {log} 2>&1"


rule joint:
    input:
        rgb="work/{model}_{dataset}_rgb/test_scores.npz",
        flow="work/{model}_{dataset}_flow/test_scores.npz",
    output:
        result="results/{model}_{dataset}_joint.json",
        sweep="results/{model}_{dataset}_joint.sweep.json",
    params:
        fallback=f"{config['fusion']['rgb']} {config['fusion']['flow']}",
    log:
        "logs/joint/{model}_{dataset}.log",
    benchmark:
        "benchmarks/joint/{model}_{dataset}.tsv"
    conda:
        PREP_ENV
    shell:
        "python -m train.evaluate fuse --rgb {input.rgb} --flow {input.flow} --sweep {output.sweep}"
        " --fallback-weights {params.fallback}"
        " --model {wildcards.model} --dataset {wildcards.dataset} --out {output.result} > {log} 2>&1"


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
