rule train:
    input:
        check="data/{dataset}/check.txt",
        annotations="data/{dataset}/annotations",
        pretrained=pretrained_file,
    output:
        "work/{model}_{dataset}_{mode}/final.pt",
    params:
        launch=torchrun_launch,
        train_list=stream_list("train"),
        val_list=stream_list("test"),
        settings=recipe_json,
        root=stream_root,
        run_dir=subpath(output[0], parent=True),
        threads=threads_per_process,
        pretrained=pretrained_option,
    threads: config["train"]["threads"]
    priority: train_priority
    resources:
        **train_resources(),
    log:
        "logs/train/{model}_{dataset}_{mode}.log",
    benchmark:
        "benchmarks/train/{model}_{dataset}_{mode}.tsv"
    conda:
        PREP_ENV
    shell:
        "{params.launch} -m train.train --settings {params.settings:q} --mode {wildcards.mode}"
        " --train-list {params.train_list} --val-list {params.val_list} --root {params.root}"
        " --classes {input.annotations}/label_map.txt --run-dir {params.run_dir}"
        " --threads {params.threads} {params.pretrained} > {log} 2>&1"
