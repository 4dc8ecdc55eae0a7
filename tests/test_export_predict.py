"""Export round trip (the exported model gives the same logits) and predict on a real video file."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from train.export import example_input, export, load_checkpoint, load_torchscript
from train.predict import predict_video


def train_tiny(synthetic_small, run_dir, mode):
    rows = synthetic_small["frames"]
    labels = dict(zip(synthetic_small["index"]["video_id"], synthetic_small["index"]["label"]))
    lists = run_dir / "lists"
    lists.mkdir(parents=True)
    offset = 0 if mode == "rgb" else 1
    (lists / "train.txt").write_text("".join(f"{r['video_id']} {r['n_frames'] - offset} {labels[r['video_id']]}\n"
                                             for r in rows))
    (lists / "classes.txt").write_text("\n".join(synthetic_small["classes"]) + "\n")
    settings = {"arch": "tsm_r18", "model_options": {"base_channels": 4}, "num_clips": 4, "input_size": 32,
                "resize_short": 40, "epochs": 1, "batch_size": 4, "data_workers": 0}
    root = synthetic_small["root"] / ("rawframes" if mode == "rgb" else "flow")
    command = [sys.executable, "-m", "train.train", "--settings", json.dumps(settings), "--mode", mode,
               "--train-list", str(lists / "train.txt"), "--val-list", str(lists / "train.txt"),
               "--root", str(root), "--classes", str(lists / "classes.txt"), "--run-dir", str(run_dir),
               "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ,
                                                                                  "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir / "final.pt"


@pytest.fixture(scope="module")
def checkpoints(synthetic_small, tmp_path_factory):
    return {mode: train_tiny(synthetic_small, tmp_path_factory.mktemp(mode), mode) for mode in ("rgb", "flow")}


def test_torchscript_round_trip_gives_the_same_logits(checkpoints, tmp_path):
    written = export(checkpoints["rgb"], tmp_path / "model", formats=("torchscript",))
    assert written == [tmp_path / "model.pt"]
    model, settings, classes = load_checkpoint(checkpoints["rgb"])
    scripted, exported_classes, exported_settings = load_torchscript(tmp_path / "model.pt")
    clip = torch.randn_like(example_input(settings, batch=2))
    with torch.no_grad():
        assert torch.allclose(model(clip), scripted(clip), atol=1e-5)
    assert exported_classes == classes and exported_settings["arch"] == "tsm_r18"


def test_export_cli(checkpoints, tmp_path):
    result = subprocess.run([sys.executable, "-m", "train.export", str(checkpoints["flow"]), str(tmp_path / "f"),
                             "--format", "torchscript"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and (tmp_path / "f.pt").is_file(), result.stderr


@pytest.mark.parametrize("mode", ["rgb", "flow"])
def test_predict_on_a_raw_video(checkpoints, synthetic_small, mode):
    video = synthetic_small["root"] / "raw" / "videos" / synthetic_small["index"]["video_path"][0]
    top = predict_video(video, checkpoints[mode], top=3)
    assert len(top) == 3 and all(name in synthetic_small["classes"] for name, _ in top)
    probabilities = [p for _, p in top]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6


def test_predict_cli_prints_the_top_classes(checkpoints, synthetic_small):
    video = synthetic_small["root"] / "raw" / "videos" / synthetic_small["index"]["video_path"][1]
    result = subprocess.run([sys.executable, "-m", "train.predict", str(video), "--checkpoint",
                             str(checkpoints["rgb"])], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4  # 4 classes, top 5 asked
    assert all(line.split("  ", 1)[1] in synthetic_small["classes"] for line in lines)
