import json

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

unknown_models = [m for m in config["models"] if m not in config["recipes"]]
if unknown_models:
    raise ValueError(
        f"config: models {unknown_models} have no entry under 'recipes' "
        f"(known: {sorted(config['recipes'])})"
    )

DATASETS = config["datasets"]
MODELS = config["models"]
MODES = config["modes"]
SPLIT = config["split"]
RESULT_MODES = MODES + (["joint"] if {"rgb", "flow"} <= set(MODES) else [])
PREP_ENV = "../../envs/actionflow.yaml"


wildcard_constraints:
    dataset="|".join(["synthetic", "ucf101", "hmdb51", "kinetics400"]),
    model="[A-Za-z0-9]+",
    mode="rgb|flow",
    shard=r"\d+",


def all_results():
    return expand(
        "results/{model}_{dataset}_{mode}.json",
        model=MODELS,
        dataset=DATASETS,
        mode=RESULT_MODES,
    )


def shard_reports(stage):
    """The shard reports of a stage (frames or flow) for the dataset of a job."""

    def reports(wildcards):
        return expand(
            "data/{dataset}/reports/{stage}_{shard}.csv",
            dataset=wildcards.dataset,
            stage=stage,
            shard=range(config[stage]["shards"]),
        )

    return reports


def list_name(dataset, subset):
    """mmaction2's list name for the configured split (train / val)."""
    if dataset == "kinetics400":
        return f"{dataset}_{subset}_list"
    return f"{dataset}_{subset}_split_{SPLIT}"


def stream_list(subset):
    def path(wildcards):
        kind = "rawframes" if wildcards.mode == "rgb" else "flow"
        name = list_name(wildcards.dataset, subset)
        return f"data/{wildcards.dataset}/annotations/{name}_{kind}.txt"

    return path


def stream_root(wildcards):
    return f"data/{wildcards.dataset}/{'rawframes' if wildcards.mode == 'rgb' else 'flow'}"


def recipe_json(wildcards):
    return json.dumps(config["recipes"][wildcards.model], sort_keys=True)


def torchrun_launch(wildcards, threads):
    """`torchrun --standalone`: a private rendezvous per job, so jobs on one node never share port 29500."""
    nproc = config["train"]["nproc_per_node"]
    return f"torchrun --standalone --nproc-per-node {nproc}"


def threads_per_process(wildcards, threads):
    return max(1, threads // config["train"]["nproc_per_node"])
