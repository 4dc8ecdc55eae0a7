"""The torch TV-L1 on CUDA: OpenCV's flow (the shipped reference flows of tests/fixtures/tvl1, made with the pinned
OpenCV: this machine needs no OpenCV contrib) and the CPU twin's, within the issue-18 targets; pairs/s at 340×256.

Imports only torch, numpy and the project's prep.base (no cv2.optflow, no network).
"""
import os
import time
from pathlib import Path

import numpy as np
import torch

from prep.base.optical_flow import batch_size_for, quantize
from prep.base.tvl1_torch import tvl1_batch

ON_CPU = os.environ.get("ACTIONFLOW_GPU_CHECK_ON_CPU") == "1"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tvl1" / "tvl1.npz"
DEVICE = "cpu" if ON_CPU and not torch.cuda.is_available() else "cuda"
GOAL_PAIRS_PER_SECOND = 200  # issue 18, one H100-class GPU at 340×256


def targets(flow, reference):
    epe = np.linalg.norm(flow.astype(np.float64) - reference, axis=-1)
    ours, theirs = quantize(flow).astype(int), quantize(reference).astype(int)
    return {"mean_epe": float(epe.mean()), "p99_epe": float(np.percentile(epe, 99)),
            "quantized_equal": float((ours == theirs).mean()), "worst_levels": int(np.abs(ours - theirs).max())}


def within(measured):
    return (measured["mean_epe"] <= 1e-3 and measured["p99_epe"] <= 1e-2 and measured["quantized_equal"] >= 0.9999
            and measured["worst_levels"] <= 1)


def test_cuda_tvl1_gives_opencvs_and_the_cpus_flow(gpu_report):
    data = np.load(FIXTURE)
    worst = None
    for key in sorted(k for k in data.files if k.startswith("frames_")):
        n = key.split("_")[1]
        frames, reference = data[key], data[f"flow_{n}"]
        previous, following = torch.from_numpy(frames[:-1]), torch.from_numpy(frames[1:])
        on_device = tvl1_batch(previous.to(DEVICE), following.to(DEVICE)).cpu().numpy()
        on_cpu = tvl1_batch(previous, following).numpy()
        for k in range(len(reference)):
            for against, expected in (("opencv", reference[k]), ("cpu", on_cpu[k])):
                measured = targets(on_device[k], expected)
                assert within(measured), f"{data[f'name_{n}']} pair {k} vs {against}: {measured}"
                if worst is None or measured["mean_epe"] > worst["mean_epe"]:
                    worst = measured
        exact = sum(np.array_equal(a, b) for a, b in zip(on_device, reference))
        gpu_report.append((f"tvl1 fidelity {data[f'name_{n}']}", {"bit_exact_pairs": f"{exact}/{len(reference)}"}))
    gpu_report.append(("tvl1 fidelity worst pair", worst))


def test_cuda_tvl1_pairs_per_second(gpu_report):
    data = np.load(FIXTURE)
    frames = [data[k] for k in sorted(data.files) if k.startswith("frames_") and data[k].shape[1:] == (256, 340)]
    previous = np.concatenate([f[:-1] for f in frames])
    following = np.concatenate([f[1:] for f in frames])
    batch = batch_size_for(256, 340, DEVICE, limit=256) if DEVICE == "cuda" else 2
    count = batch * (2 if DEVICE == "cuda" else 1)
    index = np.arange(count) % len(previous)
    a = torch.from_numpy(previous[index]).to(DEVICE)
    b = torch.from_numpy(following[index]).to(DEVICE)
    with torch.inference_mode():
        tvl1_batch(a[:batch], b[:batch])  # warm-up
        if DEVICE == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        for start in range(0, count, batch):
            tvl1_batch(a[start:start + batch], b[start:start + batch])
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    record = {"pairs_per_s": round(count / seconds, 1), "batch": batch, "goal_pairs_per_s": GOAL_PAIRS_PER_SECOND}
    if DEVICE == "cuda":
        record["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
    gpu_report.append(("tvl1 340x256", record))
