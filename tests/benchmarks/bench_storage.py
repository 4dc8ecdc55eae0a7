"""Storage benchmark: disk bytes per video and training-loader clips/s for frames, packs and videos, side by side.

    python tests/benchmarks/bench_storage.py [--sources DIR] [--videos 16] [--frames 250] [--workers 2]
        [--families 320x240:none,640x360:256] [--input-size 224] [--clips 64] [--batch 8] [--repeats 3]

One run, the same clips and cores for every contender. Sources: ``--sources DIR`` (real videos, ``DIR/*/*.ext``,
the first ``--videos``), else H.264 clips made with ffmpeg's lavfi (testsrc2 and mandelbrot, ``--frames`` frames at
25 fps) for each family ``WxH:SHORT``: sources of W×H, stored with the short side scaled to SHORT (``none``: as is) —
320×240 as UCF101/HMDB51 ship, and short side 256 as the Kinetics recipes read. Each family is prepared three ways:
``prep frames`` (JPEG q95 folders), ``prep frames --pack`` and ``prep reencode`` (the videos storage), and read by
the training dataset (``train.presets.make_dataset``: MultiScaleCrop → ``--input-size`` → flip, uint8 clips) in a
DataLoader with ``--workers`` workers, for TSN 8×1 and I3D 32×2 sampling. The videos storage is read twice: by the
project's decoder (PyAV, ``prep.base.frame_source.VideoFileFrames``) and by decord 0.6 (``get_batch`` of the same
frame numbers), to compare decoders on the same files. Clips/s after the first batch (worker start-up excluded), best
of ``--repeats``, contenders interleaved so a busy machine hurts all alike.

Targets (issue 13): videos ≤ 0.15× the JPEG frames' bytes; video loading ≥ 0.7× the frames loader's clips/s for
TSN 8×1 and ≥ 1.0× for I3D 32×2. Synthetic patterns compress differently from natural video: quote byte ratios from
``--sources`` runs on real clips. Not a pytest file. Prints a Markdown table at the end.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import cv2
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from prep.base.frame_source import find_video  # noqa: E402
from prep.frames import run_frames  # noqa: E402
from prep.base.media import ffmpeg_executable  # noqa: E402
from prep.reencode import run_reencode  # noqa: E402
from train.presets import make_dataset  # noqa: E402
from train.recipe import resolve  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dataloader import throughput  # noqa: E402  (the same measurement as the loader benchmark)

SAMPLINGS = {"TSN 8×1": dict(arch="tsn_r50", num_clips=8, clip_len=1, frame_interval=1),
             "I3D 32×2": dict(arch="i3d_r50", num_clips=1, clip_len=32, frame_interval=2)}
PATTERNS = ("testsrc2=size={w}x{h}:rate=25", "mandelbrot=size={w}x{h}:rate=25")
TARGETS = {"TSN 8×1": 0.7, "I3D 32×2": 1.0}
BYTES_TARGET = 0.15


class DecordFrames:
    """One video of the videos storage read through decord 0.6 instead of PyAV (the frame source's interface)."""

    def __init__(self, path, video_id):
        import decord

        self.path, self.video_id = path, video_id
        self.reader = decord.VideoReader(str(path), num_threads=1)

    def __len__(self):
        return len(self.reader)

    def read(self, k, reduce=1):
        frame = self.reader[k - 1].asnumpy()
        if reduce == 1:
            return frame
        height, width = -(-frame.shape[0] // reduce), -(-frame.shape[1] // reduce)  # as PyAV's reduced read
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        del self.reader


class DecordSource:
    """The training dataset's frame source, over decord (same frames, same transforms)."""

    def __init__(self, root):
        self.root = root

    def open(self, video_id):
        return DecordFrames(find_video(self.root, video_id), video_id)


def make_sources(folder, count, frames, width, height):
    """``count`` H.264 clips of ``frames`` frames at width×height (lavfi patterns, moving), as Kinetics ships."""
    videos = []
    for k in range(count):
        path = folder / "Cls" / f"clip{k:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        pattern = PATTERNS[k % len(PATTERNS)].format(w=width, h=height)
        subprocess.run([ffmpeg_executable(), "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern},hue=h={17 * k}",
                        "-frames:v", str(frames), "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(path)],
                       check=True)
        videos.append((f"Cls/clip{k:03d}", path))
    return videos


def real_sources(folder, count):
    found = sorted(p for p in Path(folder).glob("*/*") if p.suffix.lower() in (".avi", ".mp4", ".mkv", ".webm"))
    if not found:
        raise SystemExit(f"error: {folder}: no videos (expected DIR/class/video.ext)")
    return [(p.relative_to(folder).with_suffix("").as_posix(), p) for p in found[:count]]


def tree_bytes(root):
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def prepare(tmp, videos, short_side, workers):
    """The three storages of ``videos``; (items for the lists, {storage: bytes per video})."""
    options = dict(short_side=short_side, size=None, quality=95, naming="mmaction")
    records = run_frames(videos, tmp / "frames", workers=workers, **options)
    run_frames(videos, tmp / "packs", workers=workers, pack=True, **options)
    run_reencode(videos, tmp / "videos", workers=workers, short_side=short_side)
    items = [(r["video_id"], int(r["n_frames"]), 0) for r in records if r["status"] == "done"]
    sizes = {name: tree_bytes(tmp / name) / len(items) for name in ("frames", "packs", "videos")}
    return items, sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", help="real videos (DIR/class/video.ext) instead of lavfi patterns")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=250, help="frames per generated source (10 s at 25 fps)")
    parser.add_argument("--families", default="320x240:none,640x360:256",
                        help="comma list of WxH:SHORT (source size : stored short side, none = as is)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--clips", type=int, default=64, help="clips per measurement (cycling over the videos)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-decord", action="store_true", help="skip the decord contender")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    rows, size_rows = [], []
    for family in args.families.split(","):
        dims, short = family.split(":")
        width, height = (int(v) for v in dims.split("x"))
        short_side = None if short == "none" else int(short)
        label = f"{width}×{height}" + (f" → short side {short_side}" if short_side else "")
        with tempfile.TemporaryDirectory(prefix="bench_storage_") as tmp:
            tmp = Path(tmp)
            started = time.time()
            videos = (real_sources(args.sources, args.videos) if args.sources
                      else make_sources(tmp / "sources", args.videos, args.frames, width, height))
            items, sizes = prepare(tmp, videos, short_side, args.workers)
            print(f"{label}: {len(items)} videos, {sum(n for _, n, _ in items) / len(items):.0f} frames each "
                  f"({time.time() - started:.1f} s to prepare)", flush=True)
            size_rows.append((label, sizes))
            for name, sampling in SAMPLINGS.items():
                settings = resolve(dict(input_size=args.input_size, resize_short=args.input_size, **sampling), "rgb")
                contenders = {"frames": make_dataset(settings, items, tmp / "frames", test_mode=False),
                              "packs": make_dataset(settings, items, tmp / "packs", test_mode=False),
                              "videos (PyAV)": make_dataset(settings, items, tmp / "videos", test_mode=False)}
                if not args.no_decord:
                    contenders["videos (decord)"] = make_dataset(settings, items, tmp / "videos", test_mode=False)
                    contenders["videos (decord)"].source = DecordSource(tmp / "videos")
                best = {key: 0.0 for key in contenders}
                for _ in range(args.repeats):
                    for key, dataset in contenders.items():
                        if best[key] != best[key]:  # failed before
                            continue
                        try:
                            best[key] = max(best[key], throughput(dataset, args.clips, args.batch,
                                                                  args.workers))
                        except Exception as error:  # decord's known failures: say so, keep measuring the rest
                            print(f"  {key}: failed ({str(error).splitlines()[0][:100]})", flush=True)
                            best[key] = float("nan")
                for key, rate in best.items():
                    ratio = rate / best["frames"]
                    rows.append((label, name, key, rate, ratio))
                    print(f"  {name:9s} {key:16s} {rate:8.1f} clips/s  {ratio:5.2f}× frames", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    print("\n| source | frames (JPEG) | packs | videos | videos ÷ frames (target ≤ "
          f"{BYTES_TARGET}) |\n|---|---:|---:|---:|---:|")
    for label, sizes in size_rows:
        print(f"| {label} | {sizes['frames'] / 1e6:.2f} MB | {sizes['packs'] / 1e6:.2f} MB | "
              f"{sizes['videos'] / 1e6:.2f} MB | {sizes['videos'] / sizes['frames']:.3f} |")
    print(f"\n| source | sampling | loader | clips/s | × frames (target videos ≥ TSN {TARGETS['TSN 8×1']}, "
          f"I3D {TARGETS['I3D 32×2']}) |\n|---|---|---|---:|---:|")
    for label, name, key, rate, ratio in rows:
        print(f"| {label} | {name} | {key} | {rate:.1f} | {ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
