"""Training input and numbers (issue 23): a bad list line, a NaN recipe, a diverged loss, a damaged newest
checkpoint or a changed recipe each end as one line saying what and where — before the first step where they can be
known — and never as a traceback mid-training, a silent ``final.pt`` or a crash on resume."""
import json

import cv2
import numpy as np
import pytest
import torch

from tests.test_errors import assert_one_line_error, run_module
from train import utils
from train.data import FrameSource, ListError, check_list
from train.recipe import RecipeError, resolve, settings_changes

SETTINGS = {"arch": "tsn_r18", "model_options": {"base_channels": 4}, "num_clips": 2, "input_size": 32,
            "resize_short": 32, "flip": False, "epochs": 2, "batch_size": 2, "data_workers": 0, "lr": 0.01,
            "deterministic": True, "seed": 0}
CLASSES = ["a", "b"]


def frames_tree(root, counts):
    """``root/<class>/<video>/img_0000k.jpg``: ``counts`` maps a video id to its number of frames."""
    rng = np.random.default_rng(0)
    for video_id, count in counts.items():
        folder = root / video_id
        folder.mkdir(parents=True)
        for k in range(1, count + 1):
            cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), rng.integers(0, 255, (32, 40, 3), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    frames_tree(root / "rgb", {"a/v1": 4, "a/v2": 5, "b/v3": 4, "b/v4": 6})
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "good.txt").write_text("a/v1 4 0\na/v2 5 0\nb/v3 4 1\nb/v4 6 1\n")
    return root


def train_args(tree, run_dir, settings=SETTINGS, train_list="good.txt"):
    return ["--settings", json.dumps(settings), "--mode", "rgb", "--train-list", tree / train_list, "--val-list",
            tree / "good.txt", "--root", tree / "rgb", "--classes", tree / "classes.txt", "--run-dir", run_dir,
            "--threads", "1"]


# --------------------------------------------------------------------------------------------- lists, checked first

BAD_LINES = {  # the bad line (line 2 of the list) -> what the one line must say
    "a/v2 5 2": "label 2",              # one past the last class
    "a/v2 5 -1": "label -1",
    "a/v2 5 x": "not 'video total_frames label'",
    "a/v2 5 1.5": "not 'video total_frames label'",
    "a/v2 9 0": "lists 9 frames, 5 are on disk",
    "a/v2 0 0": "total_frames 0",
    "a/gone 4 0": "a/gone",            # no folder
    "../../etc 4 0": "../../etc",       # outside the root
}


@pytest.mark.parametrize("line", sorted(BAD_LINES))
def test_a_bad_list_line_is_named_by_list_and_line(tree, tmp_path, line):
    path = tmp_path / "list.txt"
    path.write_text(f"a/v1 4 0\n{line}\nb/v3 4 1\n")
    with pytest.raises(ListError) as error:
        check_list(path, len(CLASSES), FrameSource(str(tree / "rgb")))
    message = str(error.value)
    assert str(path) in message and "line 2" in message and BAD_LINES[line] in message, message
    assert "\n" not in message


def test_a_good_list_passes_with_its_items(tree):
    items = check_list(tree / "good.txt", len(CLASSES), FrameSource(str(tree / "rgb")))
    assert items == [("a/v1", 4, 0), ("a/v2", 5, 0), ("b/v3", 4, 1), ("b/v4", 6, 1)]


def test_training_on_a_bad_list_stops_before_the_first_step(tree, tmp_path):
    (tmp_path / "bad.txt").write_text("a/v1 4 0\nb/v4 6 7\n")
    result = run_module("train.train", *train_args(tree, tmp_path / "run", train_list=tmp_path / "bad.txt"))
    assert_one_line_error(result, str(tmp_path / "bad.txt"), "line 2", "label 7")
    assert not (tmp_path / "run" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("key, value, needle", [
    ("lr", float("nan"), "lr is nan"), ("lr", float("inf"), "lr is inf"), ("lr", 0, "lr must be a number > 0"),
    ("epochs", 0, "epochs must be an integer >= 1"), ("batch_size", -1, "batch_size must be an integer >= 1"),
    ("batch_size", 2.5, "batch_size must be"), ("epochs", True, "epochs must be"),
    ("weight_decay", -1e-4, "weight_decay must be a number >= 0"), ("momentum", float("nan"), "momentum is nan"),
    ("scales", [1, float("nan")], "scales.1 is nan"), ("warmup_ratio", 2, "warmup_ratio must be at most 1"),
])
def test_settings_no_run_can_use_are_refused_by_name(key, value, needle):
    with pytest.raises(RecipeError, match=needle.replace(".", r"\.")):
        resolve({**SETTINGS, key: value}, "rgb")
    with pytest.raises(RecipeError, match=needle.replace(".", r"\.")):  # in a mode's sub-dict alike
        resolve({**SETTINGS, "rgb": {key: value}}, "rgb")


def test_train_with_epochs_zero_or_a_nan_lr_is_one_line(tree, tmp_path):
    for key, value, needle in (("epochs", 0, "epochs"), ("batch_size", -1, "batch_size"), ("lr", float("nan"), "lr")):
        result = run_module("train.train", *train_args(tree, tmp_path / key, {**SETTINGS, key: value}))
        assert_one_line_error(result, needle)


def test_a_diverged_loss_stops_the_run_with_epoch_and_step_and_no_final(tree, tmp_path):
    run_dir = tmp_path / "run"
    result = run_module("train.train", *train_args(tree, run_dir, {**SETTINGS, "lr": 1e30, "epochs": 3}))
    line = assert_one_line_error(result, "training loss is", "at epoch 1, step")
    assert "no final.pt" in line
    assert not (run_dir / "final.pt").exists()
    assert not list((run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").exists() else True


# ------------------------------------------------------------------------------------------------- resuming

def checkpoint(path, epoch, step=0, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "step": step, **extra}, path)
    return path


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_a_checkpoint"])
def test_resume_passes_over_a_newest_checkpoint_that_does_not_load(tmp_path, damage):
    good = checkpoint(tmp_path / "checkpoints" / "epoch_0001.pt", 1)
    newest = checkpoint(tmp_path / "checkpoints" / "epoch_0002.pt", 2)
    data = newest.read_bytes()
    newest.write_bytes({"truncated": data[:len(data) // 2], "empty": b"",
                        "not_a_checkpoint": b"PK\x03\x04 not a zip at all"}[damage])
    warnings = []
    path, state = utils.resume_point(tmp_path, warn=lambda line, **_: warnings.append(line))
    assert path == good and state["epoch"] == 1
    assert len(warnings) == 1 and "epoch_0002.pt" in warnings[0]


def test_resume_takes_an_epoch_checkpoint_when_the_interrupted_one_is_damaged(tmp_path):
    checkpoint(tmp_path / "checkpoints" / "epoch_0001.pt", 1)
    interrupted = checkpoint(utils.interrupted_path(tmp_path), 1, step=3)
    interrupted.write_bytes(interrupted.read_bytes()[:100])
    path, state = utils.resume_point(tmp_path, warn=lambda *a, **k: None)
    assert path.name == "epoch_0001.pt"
    checkpoint(utils.interrupted_path(tmp_path), 1, step=3)  # whole again: it holds more training
    assert utils.resume_point(tmp_path, warn=lambda *a, **k: None)[0] == utils.interrupted_path(tmp_path)


def test_resume_with_no_checkpoint_that_loads_is_one_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch_0001.pt").write_bytes(b"garbage")
    with pytest.raises(utils.ResumeError, match="no checkpoint loads"):
        utils.resume_point(tmp_path, warn=lambda *a, **k: None)
    assert utils.resume_point(tmp_path / "fresh") == (None, None)


def test_settings_changes_name_what_changed_and_ignore_speed_settings():
    old = resolve(SETTINGS, "rgb")
    assert settings_changes(old, resolve({**SETTINGS, "data_workers": 4, "compile": True}, "rgb")) == []
    # a longer training of the same recipe resumes (tests/test_pretrained.py trains a finished run on)
    assert settings_changes(old, resolve({**SETTINGS, "lr": 0.02, "epochs": 4}, "rgb")) == ["lr: 0.01 -> 0.02"]


def test_a_changed_recipe_is_named_instead_of_resumed(tree, tmp_path):
    run_dir = tmp_path / "run"
    old = resolve(SETTINGS, "rgb")
    checkpoint(run_dir / "checkpoints" / "epoch_0001.pt", 1, settings=old, classes=CLASSES)
    result = run_module("train.train", *train_args(tree, run_dir, {**SETTINGS, "lr": 0.05}))
    assert_one_line_error(result, "epoch_0001.pt", "the recipe changed", "lr: 0.01 -> 0.05")
    assert not (run_dir / "final.pt").exists()


@pytest.mark.parametrize("where, value, needle", [
    (("lr",), ".nan", "recipes.tsn.synthetic.lr is NaN"),
    (("lr",), ".inf", "lr"),
    (("flow", "epochs"), "0", "epochs"),
    (("rgb", "batch_size"), "-1", "batch_size"),
    (("rgb", "momentum"), ".nan", "recipes.tsn.synthetic.rgb.momentum is NaN"),
])
def test_the_workflow_refuses_a_nan_or_non_positive_recipe_number(tmp_path, where, value, needle):
    """YAML's .nan passes every JSON-schema bound (NaN compares false); a mode's sub-dict is not under the schema's
    bounds at all: both are refused when the Snakefile is read, by key."""
    import os
    import subprocess

    import yaml

    from tests.conftest import BIN, REPO, snakemake_executable

    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    recipe = config["recipes"]["tsn"]["synthetic"]
    for key in where[:-1]:
        recipe = recipe.setdefault(key, {})
    recipe[where[-1]] = "VALUE"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config).replace("VALUE", value).replace("'", ""))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), f"--configfile={bad}", "-n"], capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert needle in output, output


def test_scoring_a_bad_list_is_one_line_before_any_clip(tree, tmp_path):
    from train.models import build_model

    settings = resolve(SETTINGS, "rgb")
    model = build_model(settings["arch"], len(CLASSES), in_channels=3, num_segments=settings["num_clips"],
                        **settings["model_options"])
    torch.save({"model": model.state_dict(), "settings": settings, "classes": CLASSES, "epoch": 2},
               tmp_path / "final.pt")
    (tmp_path / "val.txt").write_text("a/v1 4 0\nb/v3 40 1\n")
    result = run_module("train.evaluate", "score", "--checkpoint", tmp_path / "final.pt", "--list",
                        tmp_path / "val.txt", "--root", tree / "rgb", "--out", tmp_path / "r.json", "--model", "tsn",
                        "--dataset", "synthetic")
    assert_one_line_error(result, str(tmp_path / "val.txt"), "line 2", "lists 40 frames, 4 are on disk")
    assert not (tmp_path / "r.json").exists()
