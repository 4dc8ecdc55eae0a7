"""The GPU check, one script (no pytest, no network): what only a GPU can show, in ≤ 6 minutes on one GPU.

    python tests/gpu/check_gpu.py                # on a machine with 1+ CUDA GPUs; exit 0 when every check passed
    python tests/gpu/check_gpu.py --on-cpu       # the same code on the CPU with tiny models (a test of the test)

Two processes always (``train.launch --nproc-per-node 2``): on one GPU they share it (gloo over the CUDA tensors,
train.utils.device_and_backend), on two or more each has its own (NCCL), so the collectives, DDP and the
multi-process evaluation run on any GPU machine. Checks: each published recipe's network (one per distinct network
and input geometry) trains a few steps at its recipe input size and batch with the default AMP and channels_last,
every collective checked by tests/collective_guard.py; a flow stream trains; a run stopped by SIGTERM resumes; a
diverged loss stops every rank at the same step; two evaluation processes give the one-process scores in both test
modes; the torch TV-L1 on CUDA gives OpenCV's flow (the reference flows shipped in tests/fixtures/tvl1) and the CPU
twin's within the issue-18 targets, and its pairs/s at 340×256. Prints clips/s, the data-wait fraction and the peak
GPU memory per check. Imports only torch, numpy, OpenCV and the project (as the training does).

    python tests/gpu/check_gpu.py --only tvl1     # some checks: train, flow, resume, diverge, evaluate, tvl1
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from train.recipe import RECIPES_DIR, make_model, resolve  # noqa: E402  (the checkout's train package)

PROCESSES = 2
STEPS = 2  # optimizer steps per process in the training runs
CLASSES = 4
FRAMES = 72  # enough for the longest recipe clip (64 consecutive frames)
SIZE = (340, 256)  # Kinetics frames as the recipes assume them (short side 256)
# --on-cpu: the same code with tiny models
TINY = {"model_options": {"base_channels": 4}, "input_size": 32, "resize_short": 40, "batch_size": 2}
TVL1_FIXTURE = REPO / "tests" / "fixtures" / "tvl1" / "tvl1.npz"
TVL1_GOAL_PAIRS_PER_SECOND = 200  # issue 18, one H100-class GPU at 340×256
CHECKS = ("train", "flow", "resume", "diverge", "evaluate", "tvl1")


class CheckFailed(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def distinct_recipes():
    """One published recipe per distinct network and input geometry (recipes that differ only in the dataset,
    the lr or the non-local mode train the same tensor shapes); the *_synthetic CPU demos are left out."""
    chosen = {}
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        if path.stem.endswith("_synthetic"):
            continue
        settings = resolve({"base": path.stem}, "rgb")
        arch = settings["arch"].split("_nl_")[0] + ("_nl" if "_nl_" in settings["arch"] else "")
        chosen.setdefault((arch, settings["num_clips"], settings["clip_len"], settings["input_size"]), path.stem)
    return sorted(chosen.values())


def write_videos(root, frames, size):
    """8 videos of rgb frames (img_) and flow (flow_x_/flow_y_): textured backgrounds moving class-wise, so the
    decoder does real JPEG work."""
    rng = np.random.default_rng(0)
    ids = []
    for index in range(8):
        label = index % CLASSES
        folder = root / f"class{label}" / f"video{index}"
        folder.mkdir(parents=True)
        background = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        for k in range(1, frames + 1):
            cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), np.roll(background, (label + 1) * k, axis=label % 2))
            if k < frames:
                flow = np.full((size[1], size[0]), 128 + 8 * (label + 1), dtype=np.uint8)
                cv2.imwrite(str(folder / f"flow_x_{k:05d}.jpg"), flow)
                cv2.imwrite(str(folder / f"flow_y_{k:05d}.jpg"), 255 - flow)
        ids.append((f"class{label}/video{index}", label))
    (root / "classes.txt").write_text("".join(f"class{c}\n" for c in range(CLASSES)))
    return ids


class Checker:
    def __init__(self, work, on_cpu):
        self.work, self.on_cpu = work, on_cpu
        self.gpus = 0 if on_cpu else min(PROCESSES, torch.cuda.device_count())
        self.frames = FRAMES if not on_cpu else 12
        self.root = work / "frames"
        self.ids = write_videos(self.root, self.frames, SIZE if not on_cpu else (64, 48))
        self.report = []

    def environment(self):
        return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "PYTHONPATH": str(REPO)}

    def write_list(self, name, rows, mode):
        frames = self.frames if mode == "rgb" else self.frames - 1
        path = self.work / f"{name}_{mode}.txt"
        path.write_text("".join(f"{self.ids[i % len(self.ids)][0]} {frames} {self.ids[i % len(self.ids)][1]}\n"
                                for i in range(rows)))
        return path

    def settings(self, recipe, **overrides):
        overrides = {"epochs": 1, **overrides, **(TINY if self.on_cpu else {})}
        # also under rgb: / flow:, where a recipe may set its own (the Inception recipe's epochs per mode)
        return {"base": recipe, "pretrained": None, "keep_checkpoints": 1, "accumulate": 1, **overrides,
                "rgb": overrides, "flow": overrides}

    def train(self, settings, mode, run_dir, steps=STEPS):
        """train.launch as the train rule calls it, with the guarded entry point instead of -m train.train."""
        batch = resolve(settings, mode)["batch_size"]
        train_list = self.write_list(f"{run_dir.name}_train", batch * PROCESSES * steps, mode)
        val_list = self.write_list(f"{run_dir.name}_val", PROCESSES, mode)
        threads = max(2, (os.cpu_count() or 2) // PROCESSES)
        command = [sys.executable, "-m", "train.launch", "--nproc-per-node", str(PROCESSES),
                   "--threads", str(threads * PROCESSES), "--gpus", str(self.gpus), "--",
                   str(REPO / "tests" / "collective_guard.py"), "--settings", json.dumps(settings), "--mode", mode,
                   "--train-list", str(train_list), "--val-list", str(val_list), "--root", str(self.root),
                   "--classes", str(self.root / "classes.txt"), "--run-dir", str(run_dir), "--threads",
                   str(threads)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.environment(), cwd=REPO)

    @staticmethod
    def finish(process, what, timeout=300):
        out, err = process.communicate(timeout=timeout)
        check(process.returncode == 0, f"{what} failed ({process.returncode}):\n{out[-2000:]}\n{err[-4000:]}")
        return out, err

    @staticmethod
    def last_record(run_dir):
        return json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])

    def recipe_trains(self, recipe, mode="rgb"):
        run_dir = self.work / f"{recipe}_{mode}"
        self.finish(self.train(self.settings(recipe), mode, run_dir), f"{recipe} {mode}")
        record = self.last_record(run_dir)
        check(np.isfinite(record["train_loss"]), f"{recipe} {mode}: loss {record['train_loss']}")
        run_info = torch.load(run_dir / "final.pt", map_location="cpu", weights_only=False)["run_info"]
        check(run_info["world_size"] == PROCESSES, f"{recipe}: world size {run_info['world_size']}")
        check(self.on_cpu or "peak_memory_mb" in record, f"{recipe}: no peak_memory_mb in the log")
        self.report.append((f"{recipe} {mode} ×{PROCESSES}", record))

    def sigterm_then_resume(self, recipe):
        """SIGTERM to the launcher (SLURM's preemption signal) in epoch 2: a checkpoint, a clean exit; the rerun
        resumes and finishes both epochs."""
        run_dir = self.work / "resume"
        settings = self.settings(recipe, epochs=2)
        process = self.train(settings, "rgb", run_dir, steps=4)
        for line in process.stdout:
            if line.startswith("{"):  # epoch 1 done: stop in epoch 2
                time.sleep(0.5)
                process.send_signal(signal.SIGTERM)
                break
        out, err = process.communicate(timeout=300)  # torchrun itself exits non-zero after a signal
        check("stopped by signal" in out and "Traceback" not in out, f"SIGTERM: {out[-2000:]}\n{err[-3000:]}")
        check(not (run_dir / "final.pt").exists(), "SIGTERM: final.pt written")
        out, _ = self.finish(self.train(settings, "rgb", run_dir, steps=4), "resumed run")
        epochs = [json.loads(line)["epoch"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
        check("resuming from" in out and epochs == [1, 2], f"resume: epochs {epochs}")

    def evaluation_matches_one_process(self):
        """Two evaluation processes score shards of the list: the per-video scores equal one process's."""
        recipe = ({"base": "i3d_r50_kinetics400", "eval_batch": 10} if not self.on_cpu else
                  {"arch": "i3d_r18", "model_options": {"base_channels": 4}, "num_clips": 1, "clip_len": 8,
                   "input_size": 32, "resize_short": 40, "test_views": 2, "test_crops": "three", "eval_batch": 4})
        settings = resolve(recipe, "rgb")
        torch.manual_seed(0)
        checkpoint = self.work / "eval" / "final.pt"
        checkpoint.parent.mkdir()
        torch.save({"model": make_model(settings, CLASSES).state_dict(), "settings": settings,
                    "classes": [f"class{c}" for c in range(CLASSES)], "epoch": 1}, checkpoint)
        test_list = self.write_list("eval", 4, "rgb")
        scores = {}
        for processes in (1, PROCESSES):
            out = self.work / "eval" / str(processes)
            command = [sys.executable, "-m", "train.launch", "--nproc-per-node", str(processes), "--gpus",
                       str(min(self.gpus, processes)), "--", "-m", "train.evaluate", "score", "--checkpoint",
                       str(checkpoint), "--list", str(test_list), "--root", str(self.root), "--out",
                       str(out / "result.json"), "--scores", str(out / "scores.npz"), "--model", "i3d", "--dataset",
                       "gpu-check", "--workers", "2"]
            result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300,
                                    env=self.environment())
            check(result.returncode == 0, f"evaluation × {processes}: {result.stderr[-3000:]}")
            record = json.loads((out / "result.json").read_text())
            check(record["protocol"]["eval_processes"] == processes, "eval_processes")
            with np.load(out / "scores.npz") as data:
                scores[processes] = {k: data[k] for k in ("efficient", "accurate", "labels")}
            clips = len(scores[processes]["labels"]) * record["protocol"]["test"]["accurate"]["clips_per_video"]
            self.report.append((f"evaluate {settings['arch']} accurate ×{processes}",
                                {"clips_per_second": clips / record["timings"]["accurate_seconds"],
                                 "data_wait_fraction": float("nan"),
                                 "peak_memory_mb": record["timings"]["peak_gpu_memory_mib"]}))
        for mode in ("efficient", "accurate"):  # other kernels per process: equal up to rounding
            check(np.allclose(scores[1][mode], scores[PROCESSES][mode], rtol=1e-4, atol=1e-5),
                  f"evaluation {mode}: {PROCESSES} processes differ from one")

    def diverged_loss_stops_every_rank(self, recipe):
        """lr 1e30 under DDP with the default AMP: the loss turns NaN or infinite; every rank stops at the same step
        (the check rides the stop flag's all-reduce) with one line naming epoch and step, and no final.pt."""
        run_dir = self.work / "diverge"
        process = self.train(self.settings(recipe, lr=1e30, epochs=2), "rgb", run_dir, steps=4)
        out, err = process.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.startswith("error: the training loss is")]
        check(process.returncode != 0 and lines, f"divergence: {out[-2000:]}\n{err[-3000:]}")
        steps = {line.split(": the run diverged")[0].split(" at ")[-1] for line in lines}
        check(len(steps) == 1, f"divergence: ranks stopped at different steps {lines}")
        check("at epoch 1, step" in lines[0] and "no final.pt" in lines[0], f"divergence: {lines[0]}")
        check(not (run_dir / "final.pt").exists(), "divergence: final.pt written")

    def tvl1_matches_opencv_and_the_cpu(self):
        """The torch TV-L1 on the device against the shipped OpenCV flows and the CPU twin (issue 18's targets:
        mean EPE ≤ 1e-3, p99 ≤ 1e-2, ≥ 99.99 % quantized levels equal, none off by more than one)."""
        from prep.base.optical_flow import quantize
        from prep.base.tvl1_torch import tvl1_batch

        data = np.load(TVL1_FIXTURE)
        device = "cuda" if not self.on_cpu else "cpu"
        worst = None
        keys = sorted(k for k in data.files if k.startswith("frames_"))
        for key in keys[:1] if self.on_cpu else keys:  # on the CPU the device and the twin are one: one video
            n = key.split("_")[1]
            frames, reference = data[key], data[f"flow_{n}"]
            previous, following = torch.from_numpy(frames[:-1]), torch.from_numpy(frames[1:])
            on_device = tvl1_batch(previous.to(device), following.to(device)).cpu().numpy()
            on_cpu = tvl1_batch(previous, following).numpy() if device != "cpu" else on_device
            for k in range(len(reference)):
                for against, expected in (("opencv", reference[k]), ("cpu", on_cpu[k])):
                    epe = np.linalg.norm(on_device[k].astype(np.float64) - expected, axis=-1)
                    ours, theirs = quantize(on_device[k]).astype(int), quantize(expected).astype(int)
                    measured = {"mean_epe": float(epe.mean()), "p99_epe": float(np.percentile(epe, 99)),
                                "quantized_equal": float((ours == theirs).mean()),
                                "worst_levels": int(np.abs(ours - theirs).max())}
                    check(measured["mean_epe"] <= 1e-3 and measured["p99_epe"] <= 1e-2
                          and measured["quantized_equal"] >= 0.9999 and measured["worst_levels"] <= 1,
                          f"tvl1 {data[f'name_{n}']} pair {k} vs {against}: {measured}")
                    worst = measured if worst is None or measured["mean_epe"] > worst["mean_epe"] else worst
        print(f"      tvl1 worst pair: {worst}", flush=True)

    def tvl1_pairs_per_second(self):
        from prep.base.optical_flow import batch_size_for
        from prep.base.tvl1_torch import tvl1_batch

        data = np.load(TVL1_FIXTURE)
        device = "cuda" if not self.on_cpu else "cpu"
        frames = [data[k] for k in sorted(data.files) if k.startswith("frames_") and data[k].shape[1:] == (256, 340)]
        previous = np.concatenate([f[:-1] for f in frames])
        following = np.concatenate([f[1:] for f in frames])
        batch = batch_size_for(256, 340, device, limit=256) if device == "cuda" else 2
        count = batch * (2 if device == "cuda" else 1)
        index = np.arange(count) % len(previous)
        a, b = (torch.from_numpy(x[index]).to(device) for x in (previous, following))
        with torch.inference_mode():
            tvl1_batch(a[:batch], b[:batch])  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            for start in range(0, count, batch):
                tvl1_batch(a[start:start + batch], b[start:start + batch])
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
        peak = round(torch.cuda.max_memory_allocated() / 2 ** 20) if device == "cuda" else None
        print(f"      tvl1 340x256: {count / seconds:.2f} pairs/s (goal {TVL1_GOAL_PAIRS_PER_SECOND} on one H100-class "
              f"GPU), batch {batch}, peak {peak} MiB", flush=True)

    def print_report(self):
        print(f"\n{'check':48s} {'clips/s':>9s} {'data wait':>9s} {'peak MB':>9s}")
        for name, record in self.report:
            peak = record.get("peak_memory_mb")
            wait = record["data_wait_fraction"]
            print(f"{name:48s} {record['clips_per_second']:9.1f} {f'{wait:.1%}' if wait == wait else '-':>9} "
                  f"{peak if peak is not None else '-':>9}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--on-cpu", action="store_true", help="tiny models on the CPU (tests the check itself)")
    parser.add_argument("--recipes", nargs="*", help="only these recipes (default: one per distinct network)")
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=CHECKS, help="only these checks (default: all)")
    args = parser.parse_args(argv)
    if not args.on_cpu and not torch.cuda.is_available():
        print("check_gpu: no CUDA GPU (use --on-cpu to test the check on the CPU)", file=sys.stderr)
        return 2
    started = time.time()
    recipes = args.recipes or distinct_recipes()
    failures = []
    with tempfile.TemporaryDirectory(prefix="actionflow-gpu-check-") as work:
        checker = Checker(Path(work), args.on_cpu)
        print(f"check_gpu: {PROCESSES} processes on {checker.gpus or 'no'} GPU(s); recipes: {', '.join(recipes)}",
              flush=True)
        tsn = "tsn_r50_kinetics400" if "tsn_r50_kinetics400" in recipes else recipes[0]
        tsm = "tsm_r50_kinetics400" if "tsm_r50_kinetics400" in recipes else recipes[0]
        steps = [("train", f"train {r}", lambda r=r: checker.recipe_trains(r)) for r in recipes] + [
            ("flow", f"train {tsn} flow", lambda: checker.recipe_trains(tsn, "flow")),
            ("resume", f"SIGTERM and resume {tsm}", lambda: checker.sigterm_then_resume(tsm)),
            ("diverge", f"a diverged loss stops every rank ({tsn})", lambda: checker.diverged_loss_stops_every_rank(tsn)),
            ("evaluate", "evaluation: 2 processes = 1", checker.evaluation_matches_one_process),
            ("tvl1", "TV-L1 on the device = OpenCV's and the CPU's", checker.tvl1_matches_opencv_and_the_cpu),
            ("tvl1", "TV-L1 pairs/s at 340x256", checker.tvl1_pairs_per_second)]
        steps = [(name, step) for kind, name, step in steps if kind in args.only]
        for name, step in steps:
            step_started = time.time()
            try:
                step()
                print(f"ok    {name} ({time.time() - step_started:.0f} s)", flush=True)
            except (CheckFailed, subprocess.TimeoutExpired) as error:
                failures.append(name)
                print(f"FAIL  {name} ({time.time() - step_started:.0f} s): {error}", flush=True)
        checker.print_report()
    print(f"\ncheck_gpu: {len(steps) - len(failures)}/{len(steps)} passed in {time.time() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
