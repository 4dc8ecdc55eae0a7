"""Training on GPUs as the pipeline runs it: train.launch → torchrun → train.train, 2 processes over NCCL (1 with a
single GPU), each recipe's model at its recipe input size with the default AMP, for a few steps, every collective
checked by tests/collective_guard.py; and a run stopped by SIGTERM that resumes. Skipped without CUDA (conftest)."""
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import BIN, REPO
from train.recipe import RECIPES_DIR, resolve

ON_CPU = os.environ.get("ACTIONFLOW_GPU_CHECK_ON_CPU") == "1"
PROCESSES = 2 if ON_CPU else min(2, torch.cuda.device_count())
STEPS = 4  # optimizer steps per process in the throughput runs
CLASSES = 4
FRAMES = 72  # enough for the longest recipe clip (64 consecutive frames)
SIZE = (340, 256)  # Kinetics frames as the recipes assume them (short side 256)
# ACTIONFLOW_GPU_CHECK_ON_CPU: the same code with tiny models, to test the tests without a GPU
TINY = {"model_options": {"base_channels": 4}, "input_size": 32, "resize_short": 40, "batch_size": 2}


def distinct_recipes():
    """One published recipe per distinct model and input geometry (recipes that differ only in the dataset, the
    dropout or the lr train the same network on the same tensor sizes); the *_synthetic CPU demos are left out."""
    chosen = {}
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        if path.stem.endswith("_synthetic"):
            continue
        settings = resolve({"base": path.stem}, "rgb")
        shape = (settings["arch"], settings["num_clips"], settings["clip_len"], settings["input_size"],
                 settings["model_options"].get("base_channels"))
        chosen.setdefault(shape, path.stem)
    return sorted(chosen.values())


RECIPES = distinct_recipes()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """8 videos of rgb frames (img_) and flow (flow_x_/flow_y_) at Kinetics size: textured squares moving
    class-wise, so the decoder does real JPEG work."""
    root = tmp_path_factory.mktemp("gpu_frames")
    rng = np.random.default_rng(0)
    ids = []
    for index in range(8):
        label = index % CLASSES
        video_id = f"class{label}/video{index}"
        folder = root / video_id
        folder.mkdir(parents=True)
        background = rng.integers(0, 256, size=(SIZE[1], SIZE[0], 3), dtype=np.uint8)
        for k in range(1, FRAMES + 1):
            frame = np.roll(background, shift=(label + 1) * k, axis=1 if label % 2 else 0)
            cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), frame)
            if k < FRAMES:
                flow = np.full((SIZE[1], SIZE[0]), 128 + 8 * (label + 1), dtype=np.uint8)
                cv2.imwrite(str(folder / f"flow_x_{k:05d}.jpg"), flow)
                cv2.imwrite(str(folder / f"flow_y_{k:05d}.jpg"), 255 - flow)
        ids.append((video_id, label))
    (root / "classes.txt").write_text("".join(f"class{c}\n" for c in range(CLASSES)))
    return root, ids


def write_list(root, ids, name, rows, mode):
    frames = FRAMES if mode == "rgb" else FRAMES - 1
    path = root / f"{name}_{mode}.txt"
    path.write_text("".join(f"{ids[i % len(ids)][0]} {frames} {ids[i % len(ids)][1]}\n" for i in range(rows)))
    return path


def settings_for(recipe, **overrides):
    overrides = {"epochs": 1, **overrides, **(TINY if ON_CPU else {})}
    # also under rgb: / flow:, where a recipe may set its own (the Inception recipe's epochs per mode)
    return {"base": recipe, "pretrained": None, "keep_checkpoints": 1, **overrides, "rgb": overrides,
            "flow": overrides}


def launch_command(settings, mode, train_list, val_list, root, run_dir):
    """train.launch as the train rule calls it, with the guarded entry point instead of -m train.train."""
    threads = max(2, (os.cpu_count() or 2) // max(PROCESSES, 1))
    return [sys.executable, "-m", "train.launch", "--nproc-per-node", str(PROCESSES),
            "--threads", str(threads * PROCESSES), "--gpus", "0" if ON_CPU else str(PROCESSES), "--",
            str(REPO / "tests" / "collective_guard.py"), "--settings", json.dumps(settings), "--mode", mode,
            "--train-list", str(train_list), "--val-list", str(val_list), "--root", str(root),
            "--classes", str(root / "classes.txt"), "--run-dir", str(run_dir), "--threads", str(threads)]


def environment():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}


def train(settings, mode, videos, run_dir, steps=STEPS):
    root, ids = videos
    batch = resolve(settings, mode)["batch_size"]
    train_list = write_list(run_dir.parent, ids, f"{run_dir.name}_train", batch * PROCESSES * steps, mode)
    val_list = write_list(run_dir.parent, ids, f"{run_dir.name}_val", PROCESSES, mode)
    return subprocess.Popen(launch_command(settings, mode, train_list, val_list, root, run_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(), cwd=REPO)


def finish(process, what, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{out[-2000:]}\n{err[-4000:]}"
    return out, err


def last_record(run_dir):
    return json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_trains_with_ddp_and_amp_at_its_input_size(recipe, videos, tmp_path, gpu_report):
    settings = settings_for(recipe)
    finish(train(settings, "rgb", videos, tmp_path / "run"), recipe)
    record = last_record(tmp_path / "run")
    assert (tmp_path / "run" / "final.pt").is_file() and np.isfinite(record["train_loss"])
    run_info = torch.load(tmp_path / "run" / "final.pt", map_location="cpu", weights_only=False)["run_info"]
    assert run_info["world_size"] == PROCESSES and run_info["pretrained"] is None
    if not ON_CPU:
        assert "peak_memory_mb" in record
    gpu_report.append((f"{recipe} rgb ×{PROCESSES}", record))


def test_flow_stream_trains_too(videos, tmp_path, gpu_report):
    recipe = "tsn_r50_kinetics400" if "tsn_r50_kinetics400" in RECIPES else RECIPES[0]
    finish(train(settings_for(recipe), "flow", videos, tmp_path / "run"), f"{recipe} flow")
    gpu_report.append((f"{recipe} flow ×{PROCESSES}", last_record(tmp_path / "run")))


def test_sigterm_then_resume(videos, tmp_path):
    """SIGTERM to the launcher (SLURM's preemption signal) in epoch 2: a checkpoint, a clean exit; the rerun
    resumes and finishes both epochs."""
    recipe = "tsm_r50_kinetics400" if "tsm_r50_kinetics400" in RECIPES else RECIPES[0]
    settings = settings_for(recipe, epochs=2)
    process = train(settings, "rgb", videos, tmp_path / "run", steps=12)
    for line in process.stdout:
        if line.startswith("{"):  # epoch 1 done: stop in epoch 2
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=600)  # torchrun itself exits non-zero after a signal; the workers not
    assert "stopped by signal" in out and "Traceback" not in out, (out[-2000:], err[-3000:])
    assert not (tmp_path / "run" / "final.pt").exists()
    out, _ = finish(train(settings, "rgb", videos, tmp_path / "run", steps=12), "resumed run")
    assert "resuming from" in out
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and (tmp_path / "run" / "final.pt").is_file()


def test_a_diverged_loss_stops_every_rank_at_the_same_step(videos, tmp_path):
    """lr 1e30 under DDP with the default AMP: the loss turns NaN or infinite; every rank stops at the same step
    (the check rides the stop flag's all-reduce: no rank waits in a collective for one that left) with one line
    naming epoch and step, and no final.pt."""
    recipe = "tsn_r50_kinetics400" if "tsn_r50_kinetics400" in RECIPES else RECIPES[0]
    process = train(settings_for(recipe, lr=1e30, epochs=2), "rgb", videos, tmp_path / "run", steps=6)
    out, err = process.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.startswith("error: the training loss is")]
    assert process.returncode != 0 and lines, (out[-2000:], err[-3000:])
    assert len({line.split(": the run diverged")[0].split(" at ")[-1] for line in lines}) == 1, lines  # one step
    assert "at epoch 1, step" in lines[0] and "no final.pt" in lines[0]
    assert not (tmp_path / "run" / "final.pt").exists()
