"""Storage benchmark: disk bytes per video and training-loader clips/s for frames, packs and videos, side by side.

    python tests/benchmarks/bench_storage.py [--sources DIR] [--videos 16] [--frames 250] [--workers 2]
        [--families 320x240:none,640x360:256] [--encodings 1,0,1;16,1,1] [--decoder-cache 1] [--input-size 224]
        [--clips 64] [--batch 8] [--repeats 3] [--no-decord]

One run, the same clips and cores for every contender. Sources: ``--sources DIR`` (real videos, ``DIR/*/*.ext``,
the first ``--videos``), else H.264 clips made with ffmpeg's lavfi (testsrc2 and mandelbrot, ``--frames`` frames at
25 fps) for each family ``WxH:SHORT``: sources of W×H, stored with the short side scaled to SHORT (``none``: as is) —
320×240 as UCF101/HMDB51 ship, and short side 256 as the Kinetics recipes read. Each family is prepared three ways:
``prep frames`` (JPEG q95 folders), ``prep frames --pack`` and ``prep reencode`` once per ``--encodings`` entry
(``KEYINT,BFRAMES,FASTDECODE``; default: what ``prep.base.encoding.settings_for`` gives a dataset read by TSN and I3D, and by I3D
alone), and read by
the training dataset (``train.presets.make_dataset``: MultiScaleCrop → ``--input-size`` → flip, uint8 clips) in a
DataLoader with ``--workers`` workers, for TSN 8×1 and I3D 32×2 sampling. The videos storage is read twice: by the
project's decoder (PyAV, ``prep.base.frame_source.VideoFileFrames``) and by decord 0.6 (``get_batch`` of the same
frame numbers; the first encoding only), to compare decoders on the same files. Each worker keeps ``--decoder-cache`` decoders open across
clips (default 1: with clips cycling over few videos a larger cache would reopen nothing, unlike an epoch over
Kinetics, where every clip is another video). Clips/s after the first batch (worker start-up excluded), best of
``--repeats``, contenders interleaved so a busy machine hurts all alike; and clips per CPU-second (the main process
and its workers), steadier than wall-clock rates where the machine is busy with other work.

Targets (issue 19): videos ≤ 0.25× the JPEG frames' bytes; video loading ≥ 0.5× the frames loader's clips/s for
TSN 8×1 and ≥ 0.8× for I3D 32×2, on real camera clips at Kinetics' size (``--sources DIR --families 0x0:256``). Synthetic patterns compress differently from natural video: quote byte ratios from
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

from prep.base import frame_source  # noqa: E402
from prep.base.encoding import EncoderSettings, settings_for  # noqa: E402
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
TARGETS = {"TSN 8×1": 0.5, "I3D 32×2": 0.8}
BYTES_TARGET = 0.25


class DecordFrames:
    """One video of the videos storage read through decord 0.6 instead of PyAV (the frame source's interface)."""

    def __init__(self, path, video_id):
        import decord

        self.path, self.video_id = path, video_id
        self.reader = decord.VideoReader(str(path), num_threads=1)

    def __len__(self):
        return len(self.reader)

    def read(self, k, reduce=1):
        return next(self.read_many([k], reduce))[1]

    def read_many(self, numbers, reduce=1):
        """As the frame source's planned read: the distinct frames in order, here one decord ``get_batch``."""
        wanted = sorted({int(k) for k in np.asarray(numbers).reshape(-1).tolist()})
        for k, frame in zip(wanted, self.reader.get_batch([k - 1 for k in wanted]).asnumpy()):
            if reduce == 1:
                yield k, frame
            else:
                height, width = -(-frame.shape[0] // reduce), -(-frame.shape[1] // reduce)
                yield k, cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)

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


def prepare(tmp, videos, short_side, workers, encodings):
    """The storages of ``videos`` (one videos tree per encoding); (items for the lists, {storage: bytes per video})."""
    options = dict(short_side=short_side, size=None, quality=95, naming="mmaction")
    records = run_frames(videos, tmp / "frames", workers=workers, **options)
    run_frames(videos, tmp / "packs", workers=workers, pack=True, **options)
    for name, settings in encodings.items():
        run_reencode(videos, tmp / name, workers=workers, short_side=short_side, settings=settings)
    items = [(r["video_id"], int(r["n_frames"]), 0) for r in records if r["status"] == "done"]
    sizes = {name: tree_bytes(tmp / name) / len(items) for name in ("frames", "packs", *encodings)}
    return items, sizes


def parse_encodings(text):
    """{tree name: EncoderSettings} of ``KEYINT,BFRAMES[,FASTDECODE];…`` (fastdecode 1 unless given)."""
    encodings = {}
    for entry in text.split(";"):
        keyint, bframes, fastdecode = ([int(v) for v in entry.split(",")] + [1])[:3]
        encodings[f"videos k{keyint} b{bframes}" + ("" if fastdecode else " slow")] = EncoderSettings(
            keyint=keyint, bframes=bframes, fastdecode=fastdecode)
    return encodings


def default_encodings():
    """What the pipeline derives for a dataset read by TSN and I3D (Kinetics), and for one read by I3D alone."""
    tsn, i3d = ("uniform", 8, 1, 1), ("uniform", 1, 32, 2)
    return ";".join(f"{s.keyint},{s.bframes},{s.fastdecode}"
                    for s in dict.fromkeys([settings_for([tsn, i3d]), settings_for([i3d])]))


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
    parser.add_argument("--encodings", default=default_encodings(),
                        help="KEYINT,BFRAMES[,FASTDECODE];… re-encodings to compare (default: the pipeline's derived settings)")
    parser.add_argument("--samplings", default=",".join(SAMPLINGS), help=f"comma list of {', '.join(SAMPLINGS)}")
    parser.add_argument("--decoder-cache", type=int, default=1, help="open decoders kept per worker (≥ 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one core per worker; and OpenCV's thread pool does not survive the workers' fork
    frame_source.DECODER_CACHE = max(1, args.decoder_cache)  # workers fork after this: they inherit it
    encodings = parse_encodings(args.encodings)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    rows, size_rows = [], []
    for family in args.families.split(","):
        dims, short = family.split(":")
        width, height = (int(v) for v in dims.split("x"))
        short_side = None if short == "none" else int(short)
        label = ("real clips" if args.sources else f"{width}×{height}") + (f" → short side {short_side}" if short_side else "")
        with tempfile.TemporaryDirectory(prefix="bench_storage_") as tmp:
            tmp = Path(tmp)
            started = time.time()
            videos = (real_sources(args.sources, args.videos) if args.sources
                      else make_sources(tmp / "sources", args.videos, args.frames, width, height))
            items, sizes = prepare(tmp, videos, short_side, args.workers, encodings)
            print(f"{label}: {len(items)} videos, {sum(n for _, n, _ in items) / len(items):.0f} frames each "
                  f"({time.time() - started:.1f} s to prepare)", flush=True)
            size_rows.append((label, sizes))
            for name in args.samplings.split(","):
                sampling = SAMPLINGS[name]
                settings = resolve(dict(input_size=args.input_size, resize_short=args.input_size, **sampling), "rgb")
                contenders = {name: make_dataset(settings, items, tmp / name, test_mode=False)
                              for name in ("frames", "packs", *encodings)}
                if not args.no_decord:
                    first = next(iter(encodings))
                    contenders[f"{first} (decord)"] = make_dataset(settings, items, tmp / first, test_mode=False)
                    contenders[f"{first} (decord)"].source = DecordSource(tmp / first)
                best = {key: 0.0 for key in contenders}
                per_cpu = {key: 0.0 for key in contenders}
                for _ in range(args.repeats):
                    for key, dataset in contenders.items():
                        if best[key] != best[key]:  # failed before
                            continue
                        try:
                            rate, cpu_rate = throughput(dataset, args.clips, args.batch, args.workers)
                            best[key], per_cpu[key] = max(best[key], rate), max(per_cpu[key], cpu_rate)
                        except Exception as error:  # decord's known failures: say so, keep measuring the rest
                            print(f"  {key}: failed ({str(error).splitlines()[0][:100]})", flush=True)
                            best[key] = per_cpu[key] = float("nan")
                for key, rate in best.items():
                    ratio, cpu_ratio = rate / best["frames"], per_cpu[key] / per_cpu["frames"]
                    rows.append((label, name, key, rate, ratio, per_cpu[key], cpu_ratio))
                    print(f"  {name:9s} {key:24s} {rate:8.1f} clips/s  {ratio:5.2f}× frames   "
                          f"{per_cpu[key]:7.1f} clips per CPU-second  {cpu_ratio:5.2f}× frames", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    print("\n| source | storage | bytes per video | ÷ frames (target videos ≤ " f"{BYTES_TARGET}) |\n|---|---|---:|---:|")
    for label, sizes in size_rows:
        for name, size in sizes.items():
            print(f"| {label} | {name} | {size / 1e6:.2f} MB | {size / sizes['frames']:.3f} |")
    print(f"\n| source | sampling | loader | clips/s | × frames (target videos ≥ TSN {TARGETS['TSN 8×1']}, "
          f"I3D {TARGETS['I3D 32×2']}) | clips per CPU-second | × frames |\n|---|---|---|---:|---:|---:|---:|")
    for label, name, key, rate, ratio, cpu_rate, cpu_ratio in rows:
        print(f"| {label} | {name} | {key} | {rate:.1f} | {ratio:.2f}× | {cpu_rate:.1f} | {cpu_ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
