"""Forward and train-step throughput (clips/s) of each model at its recipe input size, on this machine.

    python tests/benchmarks/bench_models.py [--archs tsn_r50 i3d_r50 ...] [--batch 1] [--iters 2]
                                            [--size 224] [--base-channels 64] [--threads N]

Recipe inputs (C x T x H x W): TSN 3 segments, TSM 8 segments, I3D-R50 (+NL) 32 frames, I3D Inception
64 frames (pytorch-i3d / Kinetics recipes), all at 224x224.  --size / --frames override them (e.g. the
CPU pipeline's 56x56, 8 frames).  Not a pytest file: no test_ functions.

Numbers are only meaningful on an otherwise idle machine: with other processes busy on the same cores,
OpenMP threads get descheduled and whole phases run 10-30x slower; use --threads 1 there.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from train.models import build_model, list_archs  # noqa: E402

RECIPE_FRAMES = {"tsn": 3, "tsm": 8, "i3d_r": 32, "i3d_inception": 64}
DEFAULT_ARCHS = ["tsn_r50", "tsm_r50", "i3d_r50", "i3d_r50_nl_embedded_gaussian", "i3d_inception"]


def recipe_frames(arch):
    for prefix, frames in RECIPE_FRAMES.items():
        if arch.startswith(prefix):
            return frames
    return 8


def timed(fn, iters, warmup=2):
    """Median seconds per call (the first calls pay for allocator / oneDNN set-up, so they are skipped)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(arch, batch, iters, size, frames, base_channels, num_classes=400):
    model = build_model(arch, num_classes, num_segments=frames, base_channels=base_channels)
    x = torch.randn(batch, 3, frames, size, size)
    target = torch.randint(0, num_classes, (batch,))
    model.eval()

    def forward():
        with torch.inference_mode():
            model(x)

    fwd = timed(forward, iters)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), target).backward()
        opt.step()

    step = timed(train_step, iters)
    return batch / fwd, batch / step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS, help=f"any of: {' '.join(list_archs())}")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2, help="timed iterations (after two warm-ups)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=None, help="override the recipe's frames/segments")
    ap.add_argument("--base-channels", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.iters} iters")
    print(f"{'arch':32s} {'input (CxTxHxW)':>18s} {'fwd clips/s':>12s} {'train clips/s':>14s}")
    for arch in args.archs:
        frames = args.frames or recipe_frames(arch)
        fwd, train = bench(arch, args.batch, args.iters, args.size, frames, args.base_channels)
        shape = f"3x{frames}x{args.size}x{args.size}"
        print(f"{arch:32s} {shape:>18s} {fwd:12.3f} {train:14.3f}", flush=True)


if __name__ == "__main__":
    main()
