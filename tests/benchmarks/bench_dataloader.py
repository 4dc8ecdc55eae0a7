"""Training data-loader throughput against the decode limit: our loader vs decoding the same JPEGs alone.

    python tests/benchmarks/bench_dataloader.py [--videos 40] [--frames 96] [--width 320] [--height 240]
        [--input-size 224] [--clips 160] [--batch 8] [--workers 2] [--repeats 3]

Test data: UCF101-like trees written straight as JPEG (quality 95, as ``prep frames``): ``--videos`` videos of
``--frames`` frames of ``--width``×``--height`` (smooth textures that move), rgb ``img_``, flow ``flow_x_``/``flow_y_``
(grayscale), in a temporary directory. Samplings: TSN 8×1 (8 segments; flow: stacks of 5) and I3D 32×2 (one clip
of 32 frames every 2nd). For each sampling and modality, with ``--workers`` DataLoader workers and batch
``--batch``, frames/s after the first batch (worker start-up excluded), best of ``--repeats``, contenders
interleaved so a busy machine hurts both alike, and clips per CPU-second (main process and workers; steadier on a
loaded machine):

- decode only: the same frame numbers (same sampler, same item generator) read and decoded (``cv2.imdecode`` of
  the stored bytes), nothing else — the limit a loader can reach;
- ours: ``train.presets.make_dataset`` with the recipe's training transforms (short side 256, MultiScaleCrop,
  resize to ``--input-size``, flip), uint8 clips out as training gets them.

Target (issue 12): ours ≥ 0.7× decode only. Not a pytest file: no test_ functions. Prints the load average
before and after, and a Markdown table.
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from train.data import collate_clips, release_batch  # noqa: E402
from train.presets import make_dataset  # noqa: E402
from train.recipe import resolve  # noqa: E402

SAMPLINGS = {"TSN 8×1": {"arch": "tsn_r18", "num_clips": 8, "clip_len": 1, "frame_interval": 1},
             "I3D 32×2": {"arch": "i3d_r18", "num_clips": 1, "clip_len": 32, "frame_interval": 2}}
FLOW_STACK = 5  # TSN flow: 5 stacked x/y pairs per segment


class Repeated(Dataset):
    """``length`` items cycling over a dataset (more clips than videos without a sampler)."""

    def __init__(self, dataset, length):
        self.dataset, self.length = dataset, length

    def __len__(self):
        return self.length

    def __getitem__(self, item):
        return self.dataset[item % len(self.dataset)]

    def __getitems__(self, items):  # as train.utils.EpochAwareDataset: the whole batch at once when it can
        if not hasattr(self.dataset, "__getitems__"):
            return [self[item] for item in items]
        return self.dataset.__getitems__([item % len(self.dataset) for item in items])


class DecodeOnly(Dataset):
    """The frames our dataset would sample for an item, decoded and dropped: the decode limit."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        video_id, total, label = self.dataset.items[item]
        numbers = self.dataset.sampler(total, np.random.default_rng([self.dataset.seed, 0, item]))
        gray = self.dataset.source.modality == "flow"
        components = ("x", "y") if gray else (None,)
        with self.dataset.source.open(video_id) as frames:
            for k in np.unique(numbers):
                for component in components:
                    data = np.frombuffer(frames.read_bytes(int(k), component), np.uint8)
                    cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        return torch.zeros(1), label, item


def make_data(tmp, videos, frames, width, height):
    """[(video_id, rgb frames, label)]; rgb and flow trees under tmp."""
    rng = np.random.default_rng(0)
    items = []
    for v in range(videos):
        video_id = f"class{v % 4}/v{v:03d}"
        texture = cv2.resize(rng.integers(0, 255, (height // 8, 2 * width // 8, 3), dtype=np.uint8),
                             (2 * width, height), interpolation=cv2.INTER_CUBIC)
        rgb, flow = tmp / "rawframes" / video_id, tmp / "flow" / video_id
        rgb.mkdir(parents=True)
        flow.mkdir(parents=True)
        for k in range(1, frames + 1):
            frame = texture[:, (3 * k) % width:(3 * k) % width + width]
            cv2.imwrite(str(rgb / f"img_{k:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if k < frames:
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                cv2.imwrite(str(flow / f"flow_x_{k:05d}.jpg"), gray, [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(str(flow / f"flow_y_{k:05d}.jpg"), 255 - gray, [cv2.IMWRITE_JPEG_QUALITY, 95])
        items.append((video_id, frames, v % 4))
    return items


def frames_per_clip(settings):
    return settings["num_clips"] * settings["clip_len"] * (2 if settings["mode"] == "flow" else 1)


def throughput(dataset, clips, batch, workers):
    """(clips/s after the first batch, clips per CPU-second): the CPU seconds of the main process and of the
    workers (counted when they exit at the end), start-up included — steadier than wall-clock rates on a machine
    busy with other work."""
    children, main = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
    loader = DataLoader(Repeated(dataset, clips), batch_size=batch, num_workers=workers, shuffle=False,
                        collate_fn=collate_clips)
    iterator = iter(loader)
    release_batch(next(iterator))  # workers started, first batch out
    started, count = time.perf_counter(), 0
    for batch in iterator:
        count += len(batch[0])
        release_batch(batch)  # as training does once the clips are on the device
    rate = count / (time.perf_counter() - started)
    del iterator  # the workers exit: their CPU time is counted
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) + time.process_time() - main
    return rate, clips / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--resize-short", type=int, default=256)
    parser.add_argument("--clips", type=int, default=160, help="clips per measurement (cycling over the videos)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.clips < 2 * args.batch:
        parser.error("--clips must be at least 2 × --batch (the first batch is not timed)")
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_dataloader_") as tmp:
        tmp = Path(tmp)
        started = time.time()
        items = make_data(tmp, args.videos, args.frames, args.width, args.height)
        print(f"data: {len(items)} videos × {args.frames} frames, {args.width}×{args.height} "
              f"({time.time() - started:.1f} s to make)", flush=True)
        for name, sampling in SAMPLINGS.items():
            for mode in ("rgb", "flow"):
                recipe = {**sampling, "input_size": args.input_size, "resize_short": args.resize_short}
                if mode == "flow" and sampling["clip_len"] == 1:
                    recipe["clip_len"] = FLOW_STACK
                settings = resolve(recipe, mode)
                total = (lambda n: n) if mode == "rgb" else (lambda n: n - 1)
                mode_items = [(v, total(n), label) for v, n, label in items]
                ours = make_dataset(settings, mode_items, tmp / ("rawframes" if mode == "rgb" else "flow"),
                                    test_mode=False)
                contenders = {"decode only": DecodeOnly(ours), "ours": ours}
                best, per_cpu = dict.fromkeys(contenders, 0.0), dict.fromkeys(contenders, 0.0)
                for _ in range(args.repeats):
                    for label, dataset in contenders.items():
                        rate, cpu_rate = throughput(dataset, args.clips, args.batch, args.workers)
                        best[label], per_cpu[label] = max(best[label], rate), max(per_cpu[label], cpu_rate)
                per_clip = frames_per_clip(settings)
                decode, loader = best["decode only"] * per_clip, best["ours"] * per_clip
                cpu_ratio = per_cpu["ours"] / per_cpu["decode only"]
                rows.append((name, mode, decode, loader, loader / decode, cpu_ratio))
                print(f"{name:9s} {mode:4s} decode only {decode:8.0f} frames/s  ours {loader:8.0f} frames/s  "
                      f"{loader / decode:5.2f}×  (per CPU-second: {cpu_ratio:5.2f}×)", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    print("\n| sampling | stream | decode only (JPEG frames/s) | ours (frames/s) | ours / decode | same, per CPU-second |"
          "\n|---|---|---:|---:|---:|---:|")
    for name, mode, decode, loader, ratio, cpu_ratio in rows:
        print(f"| {name} | {mode} | {decode:.0f} | {loader:.0f} | {ratio:.2f}× | {cpu_ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
