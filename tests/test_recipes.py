"""The published recipes carry the seeds' values, and a config recipe can start from one."""
import pytest
import torch

from train.models import build_model
from train.recipe import load_recipe, resolve
from train.train import lr_factor, make_optimizer

# (recipe, key, value) from the seeds' tables (README, "Recipes")
PUBLISHED = [
    ("tsn_r50_kinetics400", "optimizer", "sgd"), ("tsn_r50_kinetics400", "lr", 0.01),
    ("tsn_r50_kinetics400", "reference_batch", 256), ("tsn_r50_kinetics400", "momentum", 0.9),
    ("tsn_r50_kinetics400", "weight_decay", 1e-4), ("tsn_r50_kinetics400", "grad_clip", 40),
    ("tsn_r50_kinetics400", "epochs", 100), ("tsn_r50_kinetics400", "milestones", [40, 80]),
    ("tsn_r50_kinetics400", "num_clips", 3), ("tsn_r50_kinetics400", "test_num_clips", 25),
    ("tsn_r50_kinetics400", "test_crops", "ten"),
    ("tsm_r50_kinetics400", "lr", 0.02), ("tsm_r50_kinetics400", "reference_batch", 128),
    ("tsm_r50_kinetics400", "epochs", 50), ("tsm_r50_kinetics400", "milestones", [20, 40]),
    ("tsm_r50_kinetics400", "grad_clip", 20), ("tsm_r50_kinetics400", "head_lr_mult", 5),
    ("tsm_r50_kinetics400", "head_bias_lr_mult", 10), ("tsm_r50_kinetics400", "head_bias_weight_decay", False),
    ("i3d_r50_kinetics400", "lr", 0.01), ("i3d_r50_kinetics400", "reference_batch", 64),
    ("i3d_r50_kinetics400", "epochs", 100), ("i3d_r50_kinetics400", "milestones", [40, 80]),
    ("i3d_r50_kinetics400", "grad_clip", 40), ("i3d_r50_kinetics400", "clip_len", 32),
    ("i3d_r50_kinetics400", "frame_interval", 2), ("i3d_r50_kinetics400", "test_views", 10),
    ("i3d_r50_kinetics400", "test_crops", "three"), ("i3d_r50_kinetics400", "test_crop_size", 256),
    ("i3d_inception_ucf101_hmdb51", "optimizer", "adam"), ("i3d_inception_ucf101_hmdb51", "lr", 0.001),
    ("i3d_inception_ucf101_hmdb51", "gamma", 0.5), ("i3d_inception_ucf101_hmdb51", "milestones", [4]),
    ("i3d_inception_ucf101_hmdb51", "weight_decay", 1e-8), ("i3d_inception_ucf101_hmdb51", "batch_size", 8),
    ("i3d_inception_ucf101_hmdb51", "clip_len", 64), ("i3d_inception_ucf101_hmdb51", "input_size", 224),
    ("i3d_inception_ucf101_hmdb51", "trainable_prefixes", ["logits", "Mixed_5"]),
    ("i3d_inception_ucf101_hmdb51", "normalize", "unit"),
]
DROPOUT = {"tsn_r50_kinetics400": 0.4, "tsm_r50_kinetics400": 0.5, "i3d_r50_kinetics400": 0.5,
           "i3d_inception_ucf101_hmdb51": 0.5}


@pytest.mark.parametrize("name, key, value", PUBLISHED)
def test_published_values(name, key, value):
    assert load_recipe(name)[key] == value


@pytest.mark.parametrize("name, dropout", DROPOUT.items())
def test_published_dropout(name, dropout):
    assert load_recipe(name)["model_options"]["dropout"] == dropout


def test_inception_epochs_per_mode():
    assert resolve({"base": "i3d_inception_ucf101_hmdb51"}, "rgb")["epochs"] == 40
    assert resolve({"base": "i3d_inception_ucf101_hmdb51"}, "flow")["epochs"] == 60


def test_base_with_overrides():
    settings = resolve({"base": "tsm_r50_kinetics400", "epochs": 3, "model_options": {"base_channels": 8}}, "flow")
    assert settings["epochs"] == 3 and settings["lr"] == 0.02
    assert settings["model_options"] == {"dropout": 0.5, "init_std": 0.001, "shift_div": 8, "base_channels": 8}
    with pytest.raises(ValueError, match="unknown recipe base"):
        resolve({"base": "c3d_sports1m"}, "rgb")


def test_step_halving_and_multistep_schedules():
    inception = resolve({"base": "i3d_inception_ucf101_hmdb51"}, "rgb")
    assert [lr_factor(inception, e) for e in (0, 3.9, 4, 8, 12.5)] == [1, 1, 0.5, 0.25, 0.125]
    tsn = resolve({"base": "tsn_r50_kinetics400"}, "rgb")
    assert [lr_factor(tsn, e) for e in (0, 39.9, 40, 80)] == pytest.approx([1, 1, 0.1, 0.01])


def test_linear_lr_scaling_and_head_multipliers():
    settings = resolve({"base": "tsm_r50_kinetics400", "model_options": {"base_channels": 4}}, "rgb")
    model = build_model(settings["arch"], 10, num_segments=8, **settings["model_options"])
    optimizer, lr = make_optimizer(model, settings, world_size=2)  # 2 × 16 = 32 of the quoted 128
    assert lr == pytest.approx(0.02 * 32 / 128)
    groups = {round(g["lr_mult"]): g for g in optimizer.param_groups}
    assert groups[5]["params"] == [model.fc.weight] and groups[10]["params"] == [model.fc.bias]
    assert groups[10]["weight_decay"] == 0 and groups[1]["weight_decay"] == 1e-4


def test_trainable_prefixes_freeze_the_rest():
    settings = resolve({"base": "i3d_inception_ucf101_hmdb51", "model_options": {"base_channels": 8}}, "rgb")
    model = build_model(settings["arch"], 10, **settings["model_options"])
    optimizer, _ = make_optimizer(model, settings, world_size=1)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("logits", "Mixed_5")) for n in trained)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(trained)
