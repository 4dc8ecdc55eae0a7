import json
import math
import os
import shlex
import sys

sys.path.insert(0, workflow.basedir)  # train.recipe and prep.datasets (light modules) without installing the package
from prep.datasets import DATASETS as KNOWN_DATASETS, facts, list_name, real_datasets
from prep.datasets.schema import config_schema
from train.recipe import MODES as RECIPE_MODES
from train.recipe import RecipeError, check_config_numbers, recipe_for, resolve
from train.weights import cached_file, is_remote, pretrained_spec
from prep.base.encoding import settings_for
from prep.base.config import validate
from prep.base.tvl1_parameters import flow_parameters

REAL_DATASETS = real_datasets()

# as snakemake.utils.validate (defaults filled in), with aliases counted first and errors naming the key; the schema
# names no dataset: the registry's are filled in (prep.datasets.schema)
validate(config, config_schema())
check_config_numbers(config)

for _model in config["models"]:  # every planned run has a usable recipe (other targets: when their job is planned)
    for _dataset in config["datasets"]:
        for _mode in config["modes"]:
            resolve(recipe_for(config["recipes"], _model, _dataset), _mode)  # numbers checked (train.recipe)

DATASETS = config["datasets"]


def tvl1_parameters(dataset):
    """The TV-L1 parameters of a dataset's flow that differ from OpenCV's: config flow.tvl1 over the dataset's own
    (its facts'; they apply to tvl1 only, the config's to any algorithm and fail for another)."""
    own = facts(dataset).tvl1 if config["flow"]["algorithm"] == "tvl1" else {}
    return flow_parameters(config["flow"]["algorithm"], {**own, **config["flow"]["tvl1"]}, where="config flow.tvl1")


for _dataset in DATASETS:  # a bad flow.tvl1 fails here, naming the key, not in the first flow job
    tvl1_parameters(_dataset)

MODELS = config["models"]
MODES = config["modes"]
SPLIT = str(config["split"])  # 1 or "1" alike
RESULT_MODES = MODES + (["joint"] if {"rgb", "flow"} <= set(MODES) else [])
PREP_ENV = "../../envs/actionflow.yaml"


wildcard_constraints:
    dataset="|".join(KNOWN_DATASETS),
    model="[A-Za-z0-9-]+",
    mode="rgb|flow",
    shard=r"\d+",


def all_results():
    return expand(
        "results/{model}_{dataset}_{mode}.json",
        model=MODELS,
        dataset=DATASETS,
        mode=RESULT_MODES,
    )


def storage(dataset):
    """How a dataset's rgb frames are stored (frames | packs | videos): the config's, else the dataset's default."""
    return config["storage"].get(dataset) or facts(dataset).storage


def rgb_stage(dataset):
    """The stage writing a dataset's rgb storage: reencode (videos) or frames (folders or packs of JPEGs)."""
    return "reencode" if storage(dataset) == "videos" else "frames"


def rgb_root(dataset):
    return f"data/{dataset}/{'videos' if storage(dataset) == 'videos' else 'rawframes'}"


def pack_option(wildcards):
    """Frames and flow as packs (storage packs), flow as packs beside re-encoded videos (storage videos)."""
    return "" if storage(wildcards.dataset) == "frames" else "--pack"


def prep_jobs(dataset, stage, key):
    """Shards (Snakemake jobs) or workers (cores per job, the rule's threads) of a prep stage: the config's, else
    sized from the dataset's size (DatasetFacts.prep_jobs). Snakemake lowers threads to --cores when it has fewer."""
    return config[stage].get(key) or facts(dataset).prep_jobs(stage)[key]


def prep_threads(stage):
    return lambda wildcards: prep_jobs(wildcards.dataset, stage, "workers")


def shard_reports(stage):
    """The shard reports of a stage (``rgb``: the stage writing the rgb storage; ``flow``) for a job's dataset."""

    def reports(wildcards):
        name = rgb_stage(wildcards.dataset) if stage == "rgb" else stage
        return expand(
            "data/{dataset}/reports/{stage}_{shard}.csv",
            dataset=wildcards.dataset,
            stage=name,
            shard=range(prep_jobs(wildcards.dataset, name, "shards")),
        )

    return reports


def rgb_reports_of_flow_shard(wildcards):
    """Only the frames (or reencode) shards holding a flow shard's videos: both stages deal one sorted list
    round-robin, so flow shard j needs rgb shards s ≡ j (mod gcd). With every rgb shard as input of every flow
    shard, `snakemake -n` took ~70 s for Kinetics-sized shard counts (256 × 1024 edges); this way ~9 s."""
    stage = rgb_stage(wildcards.dataset)
    rgb_shards = prep_jobs(wildcards.dataset, stage, "shards")
    step = math.gcd(rgb_shards, prep_jobs(wildcards.dataset, "flow", "shards"))
    return expand(
        "data/{dataset}/reports/{stage}_{shard}.csv",
        dataset=wildcards.dataset,
        stage=stage,
        shard=range(int(wildcards.shard) % step, rgb_shards, step),
    )


def stream_list(subset):
    """The rawframes / flow list of the configured split: subset ``train`` or ``test`` (mmaction2's "val" lists)."""

    def path(wildcards):
        kind = "rawframes" if wildcards.mode == "rgb" else "flow"
        name = list_name(wildcards.dataset, SPLIT, subset)
        return f"data/{wildcards.dataset}/annotations/{name}_{kind}.txt"

    return path


def stream_root(wildcards):
    return rgb_root(wildcards.dataset) if wildcards.mode == "rgb" else f"data/{wildcards.dataset}/flow"


def recipe_json(wildcards):
    """The run's recipe (config recipes.<model>.<dataset> and the model-wide keys; train.recipe resolves its base)."""
    return json.dumps(recipe_for(config["recipes"], wildcards.model, wildcards.dataset), sort_keys=True)


def reencode_settings(wildcards):
    """prep reencode's encoder options for a dataset: config reencode.keyint / bframes, else derived from the
    samplings of the planned recipes that read its rgb (prep.reencode.settings_for: training and test sampling)."""
    samplings = []
    for model in MODELS:
        try:
            settings = resolve(recipe_for(config["recipes"], model, wildcards.dataset), "rgb")
        except RecipeError:  # this model is not run on this dataset
            continue
        samplings.append((settings["sampling"], settings["num_clips"], settings["clip_len"], settings["frame_interval"]))
        samplings.append((settings["test_sampling"] or settings["sampling"], settings["test_num_clips"] or
                          settings["num_clips"], settings["test_clip_len"] or settings["clip_len"],
                          settings["frame_interval"]))
    derived = settings_for(samplings, config["reencode"]["crf"])
    keyint = config["reencode"].get("keyint") or derived.keyint
    bframes = config["reencode"].get("bframes")
    bframes = derived.bframes if bframes is None else bframes
    return f"--keyint {keyint} --bframes {bframes} --fastdecode {derived.fastdecode} --crf {derived.crf}"


def frames_size(wildcards):
    """prep frames' resize option for a dataset: frames.datasets.<dataset> (size or short_side), else the size its
    recipes assume (DatasetFacts.frame_size), else frames.short_side."""
    own = config["frames"]["datasets"].get(wildcards.dataset) or facts(wildcards.dataset).frame_size or {}
    if own.get("size"):
        return f"--size {own['size']}"
    short_side = own.get("short_side", config["frames"]["short_side"])
    return f"--short-side {short_side}" if short_side else ""


def train_priority(wildcards):
    """Longest trainings first (their epochs): on a few cores the long ones must not start last and run alone while
    the other cores idle (the default run on 2 cores had I3D rgb's 60 epochs start after the short flow trainings
    and run alone for its last 3 minutes)."""
    return int(resolve(recipe_for(config["recipes"], wildcards.model, wildcards.dataset), wildcards.mode)["epochs"])


def tvl1_option(wildcards):
    """``--tvl1 key=value,…`` of a dataset's flow jobs (:func:`tvl1_parameters`), or nothing at OpenCV's defaults."""
    parameters = tvl1_parameters(wildcards.dataset)
    return "--tvl1 " + ",".join(f"{key}={value!r}" for key, value in parameters.items()) if parameters else ""


def flow_gpus():
    """GPUs of one flow job: one when the torch backend is told to run on cuda (auto takes one only if given)."""
    return 1 if config["flow"]["backend"] == "torch" and config["flow"]["device"] == "cuda" else 0


def train_gpus():
    """GPUs of one training job in total (0 on CPU): one per torchrun process on every node when train.gpu."""
    t = config["train"]
    return t["nproc_per_node"] * t["nodes"] if t.get("gpu") else 0


def train_resources():
    """The train rule's resources, for local runs (gpu) and snakemake-executor-plugin-slurm (nodes, tasks, mpi, gres).

    One node: `gpu` = GPUs (local `--resources gpu=N` counts them; the plugin turns it into --gpus, with gpu_model
    from the profile). Several nodes: one task (torchrun agent) per node; `mpi` makes the plugin's job step run the
    rule's command as is (it calls srun itself, see train/launch.py); GPUs per node go through --gres (a --gpus total
    could land unevenly), tasks_per_gpu=0 keeps the plugin from adding --ntasks-per-gpu, and gpu stays 0 so --gres
    and --gpus never both appear.
    """
    nodes = config["train"]["nodes"]
    if nodes == 1:
        return {"gpu": train_gpus()}
    resources = {"gpu": 0, "nodes": nodes, "tasks": nodes, "mpi": "srun"}
    if train_gpus():
        resources.update(gres=f"gpu:{config['train']['nproc_per_node']}", tasks_per_gpu=0)
    return resources


def torchrun_launch(wildcards, threads, resources):
    """`python -m train.launch … --`: torchrun --standalone on one node (a private rendezvous per job, so jobs on one
    node never share port 29500), srun + torchrun with a c10d rendezvous on several; per-worker threads; disjoint
    local GPUs. The rule appends the training module and its arguments."""
    t = config["train"]
    gpus = resources.get("gpu", 0) or (train_gpus() if t["nodes"] > 1 else 0)
    return (
        f"python -m train.launch --nnodes {t['nodes']} --nproc-per-node {t['nproc_per_node']}"
        f" --threads {threads} --gpus {gpus} --"
    )


def threads_per_process(wildcards, threads):
    return max(1, threads // config["train"]["nproc_per_node"])


def report_targets():
    """The report artefacts (workflow/rules/report.smk) that `rule all` builds, so `snakemake --report` finds them."""
    runs = expand("{model}_{dataset}_{mode}", model=MODELS, dataset=DATASETS, mode=MODES)
    results = expand("{model}_{dataset}_{mode}", model=MODELS, dataset=DATASETS, mode=RESULT_MODES)
    return (
        ["report/results.csv", "report/results.html"]
        + expand("report/curves/{run}.png", run=runs)
        + expand("report/classes/{result}.png", result=results)
        + expand("report/datasets/{dataset}_{kind}", dataset=DATASETS, kind=["stats.png", "stats.html"])
        + expand("report/flow/{dataset}.png", dataset=DATASETS)
    )


# pretrained weights (rule pretrained_weights in weights.smk, an input of rule train)
PRETRAINED_CACHE = os.path.normpath(os.path.expanduser(config["pretrained_cache"]))


def run_pretrained(model, dataset, mode):
    """The `pretrained` of a run as its resolved recipe says (checked), or None."""
    return pretrained_spec(resolve(recipe_for(config["recipes"], model, dataset), mode))


def pretrained_file(wildcards):
    """The train rule's input: the cached (or local) weights file of the run; none when the recipe has no weights."""
    spec = run_pretrained(wildcards.model, wildcards.dataset, wildcards.mode)
    return [] if spec is None else str(cached_file(spec, PRETRAINED_CACHE))


def pretrained_option(wildcards, input):
    return f"--pretrained {shlex.quote(str(input.pretrained))}" if input.pretrained else ""


def pretrained_fetch(wildcards):
    """`URL --sha256 HEX` of a cache entry, from any run of config `recipes` whose recipe names it (a target may be a
    run outside `models` / `datasets`)."""
    wanted = os.path.join(PRETRAINED_CACHE, wildcards.key, wildcards.name)
    for model in config["recipes"]:
        for dataset in KNOWN_DATASETS:
            try:
                recipe = recipe_for(config["recipes"], model, dataset)
            except RecipeError:  # no recipe for this pair
                continue
            for mode in RECIPE_MODES:
                spec = pretrained_spec(resolve(recipe, mode))
                if spec and is_remote(spec["url"]) and str(cached_file(spec, PRETRAINED_CACHE)) == wanted:
                    sha256 = f" --sha256 {spec['sha256']}" if spec["sha256"] else ""
                    git_blob = f" --git-blob {spec['git_blob']}" if spec.get("git_blob") else ""
                    return shlex.quote(spec["url"]) + sha256 + git_blob
    raise ValueError(f"{wanted}: no recipe under config `recipes` names these pretrained weights")
