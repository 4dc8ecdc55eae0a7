"""Multi-GPU evaluation in both test modes: torchrun processes (one per GPU, NCCL) scoring shards of the test list
give the one-process scores; prints clips/s and peak GPU memory per process. Skipped without CUDA;
ACTIONFLOW_GPU_CHECK_ON_CPU=1 runs the same code on the CPU (gloo, a tiny model) to test the test.

    python -m pytest tests/gpu/test_evaluate_gpu.py -v -s
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
ON_CPU = os.environ.get("ACTIONFLOW_GPU_CHECK_ON_CPU") == "1"
pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() or ON_CPU), reason="no CUDA GPU")

# the published I3D-R50 recipe at its test protocol (10 clips × ThreeCrop 256 of 32×2 frames); tiny on the CPU
RECIPE = ({"base": "i3d_r50_kinetics400", "eval_batch": 10} if not ON_CPU else
          {"arch": "i3d_r18", "model_options": {"base_channels": 4}, "num_clips": 1, "clip_len": 8, "input_size": 32,
           "resize_short": 40, "test_views": 2, "test_crops": "three", "eval_batch": 4})


def write_tree(root, videos, frames, width, height):
    rng = np.random.default_rng(0)
    lines = []
    for v in range(videos):
        folder = root / f"c{v % 2}" / f"v{v}"
        folder.mkdir(parents=True)
        texture = cv2.resize(rng.integers(0, 255, (height // 8, width // 4, 3), dtype=np.uint8), (2 * width, height))
        for k in range(1, frames + 1):
            cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), texture[:, k % width:k % width + width])
        lines.append(f"c{v % 2}/v{v} {frames} {v % 2}\n")
    (root / "list.txt").write_text("".join(lines))


def evaluate(checkpoint, root, out, processes):
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command = [sys.executable, *launcher, "-m", "train.evaluate", "score", "--checkpoint", str(checkpoint),
               "--list", str(root / "list.txt"), "--root", str(root), "--out", str(out / "result.json"),
               "--scores", str(out / "scores.npz"), "--model", "i3d", "--dataset", "gpu-check", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out / "scores.npz") as data:
        return json.loads((out / "result.json").read_text()), {k: data[k] for k in data.files}


def test_multi_gpu_evaluation_gives_the_one_process_scores(tmp_path, request):
    from train.recipe import make_model, resolve

    write_tree(tmp_path / "frames", 4, 80 if not ON_CPU else 12, 320 if not ON_CPU else 64,
               240 if not ON_CPU else 48)
    settings = resolve(RECIPE, "rgb")
    torch.manual_seed(0)
    checkpoint = tmp_path / "run" / "final.pt"
    checkpoint.parent.mkdir()
    torch.save({"model": make_model(settings, 2).state_dict(), "settings": settings, "classes": ["a", "b"],
                "epoch": 1}, checkpoint)
    processes = 2 if ON_CPU else min(2, torch.cuda.device_count())
    one_record, one = evaluate(checkpoint, tmp_path / "frames", tmp_path / "one", 1)
    many_record, many = evaluate(checkpoint, tmp_path / "frames", tmp_path / "many", processes)
    for mode in ("efficient", "accurate"):  # cuDNN may pick other kernels per process: equal up to rounding
        np.testing.assert_allclose(one[mode], many[mode], rtol=1e-4, atol=1e-5, err_msg=mode)
    assert many_record["protocol"]["eval_processes"] == processes
    clips = len(one["labels"]) * many_record["protocol"]["test"]["accurate"]["clips_per_video"]
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    for name, record in (("1 process", one_record), (f"{processes} processes", many_record)):
        timings = record["timings"]
        terminal.write_line(f"evaluate {settings['arch']} accurate, {name}: {clips / timings['accurate_seconds']:.1f} "
                            f"clips/s, peak GPU memory per process {timings['peak_gpu_memory_mib']} MiB")
