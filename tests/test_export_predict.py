"""Export round trip (the exported program, and ONNX where installed, give the same logits) and predict on a real
video file."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from train.export import example_input, export, load_checkpoint, load_exported
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


def test_exported_program_round_trip_gives_the_same_logits_at_any_batch(checkpoints, tmp_path):
    written = export(checkpoints["rgb"], tmp_path / "model", formats=("pt2",))
    assert written == [tmp_path / "model.pt2", tmp_path / "model.json"]
    model, settings, classes = load_checkpoint(checkpoints["rgb"])
    exported, exported_classes, exported_settings = load_exported(tmp_path / "model.pt2")
    for batch in (1, 3):  # traced at 2: the batch dimension stays free
        clip = torch.randn_like(example_input(settings, batch=batch))
        with torch.no_grad():
            torch.testing.assert_close(exported(clip), model(clip), rtol=1e-5, atol=1e-5)
    assert exported_classes == classes and exported_settings == settings
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert sidecar["classes"] == classes and sidecar["settings"]["arch"] == "tsm_r18"
    assert sidecar["input"]["shape"] == ["B", *example_input(settings).shape[1:]]


def test_export_cli_without_deprecated_apis(checkpoints, tmp_path):
    """torch.jit.trace / save are deprecated in the pinned torch: the export must not touch them (every
    DeprecationWarning an error)."""
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-m", "train.export",
                             str(checkpoints["flow"]), str(tmp_path / "f"), "--format", "pt2"],
                            capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and (tmp_path / "f.pt2").is_file(), result.stderr[-3000:]
    exported, _, settings = load_exported(tmp_path / "f.pt2")
    assert settings["mode"] == "flow"


def test_onnx_export_gives_the_same_logits(checkpoints, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    written = export(checkpoints["rgb"], tmp_path / "model", formats=("onnx",))
    assert tmp_path / "model.onnx" in written
    onnxruntime = pytest.importorskip("onnxruntime")
    model, settings, _ = load_checkpoint(checkpoints["rgb"])
    clip = torch.randn_like(example_input(settings, batch=3))
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    logits = session.run(["logits"], {"clip": clip.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(clip), rtol=1e-4, atol=1e-5)


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
