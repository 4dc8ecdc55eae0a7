"""Training data-loader throughput: ours (train.data.RawframeDataset) on rawframes and on packs vs a naive loader.

    python tests/benchmarks/bench_dataloader.py [--videos 32] [--frames 64] [--frame-size 128] [--input-size 112]
                                                [--clips 96] [--batch 8] [--workers 2] [--repeats 3]

Test data: ``prep.datasets.synthetic.generate`` (``--videos`` videos of ``--frames`` frames, square
``--frame-size`` px) → ``prep.frames.run_frames`` twice, as rawframe directories and as ``--pack`` files, in a
temporary directory. Two samplings: TSN 8×1 (8 segments, one rgb frame each) and I3D 32×2 (one clip of 32 frames
every 2nd). Training transforms (MultiScaleCrop → resize to ``--input-size`` → flip), DataLoader with ``--workers``
workers and batch ``--batch``; clips/s after the first batch (worker start-up excluded), best of ``--repeats``,
contenders interleaved so a busy machine hurts all alike:

- ours, rawframes and packs: uint8 clips out (normalised later on the device by ``normalize_on_device``); also
  "ours + CPU normalise": the same with the float normalisation done in the main process, as a run without GPU does;
- naive: the same frame numbers, crop boxes and flips, but PIL ``Image.open`` per frame (duplicates decoded again),
  per-frame crop → resize → flip → float32 normalise, stacked as float tensors (what a first loader looks like;
  torchvision-free).

Target: ours ≥ 1.5× the naive loader. Not a pytest file: no test_ functions. The load average is printed before
and after.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from train.data import RawframeDataset, normalize_on_device, sample_clips  # noqa: E402
from train.data.transforms import IMAGENET_MEAN, IMAGENET_STD, multi_scale_crop_box  # noqa: E402

SAMPLINGS = {"TSN 8×1": dict(num_clips=8, clip_len=1, frame_interval=1, layout="segments"),
             "I3D 32×2": dict(num_clips=1, clip_len=32, frame_interval=2, layout="clip")}


class Repeated(Dataset):
    """``length`` items cycling over a dataset (more clips than videos without a sampler)."""

    def __init__(self, dataset, length):
        self.dataset, self.length = dataset, length

    def __len__(self):
        return self.length

    def __getitem__(self, item):
        return self.dataset[item % len(self.dataset)]


class NaiveDataset(Dataset):
    """PIL per frame, float work per frame; same frames, crop boxes and flips as ours (same item generator)."""

    def __init__(self, items, root, num_clips, clip_len, frame_interval, layout, input_size, seed=0):
        self.items, self.root = items, Path(root)
        self.num_clips, self.clip_len, self.frame_interval = num_clips, clip_len, frame_interval
        self.layout, self.input_size, self.seed = layout, input_size, seed
        self.mean = np.float32(IMAGENET_MEAN) / 255.0
        self.std = np.float32(IMAGENET_STD) / 255.0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, item):
        from PIL import Image

        video_id, total, label = self.items[item]
        rng = np.random.default_rng([self.seed, 0, item])
        numbers = sample_clips(total, self.num_clips, self.clip_len, self.frame_interval, False, 1, rng)[0]
        first = Image.open(self.root / video_id / "img_00001.jpg")
        width, height = first.size
        top, left, crop_h, crop_w = multi_scale_crop_box(height, width, self.input_size, rng)
        flip = rng.random() < 0.5
        frames = []
        for n in numbers.reshape(-1):
            image = Image.open(self.root / video_id / f"img_{n:05d}.jpg").convert("RGB")
            image = image.crop((left, top, left + crop_w, top + crop_h))
            image = image.resize((self.input_size, self.input_size), Image.BILINEAR)
            if flip:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            array = np.asarray(image, dtype=np.float32) / 255.0
            frames.append(torch.from_numpy((array - self.mean) / self.std).permute(2, 0, 1))  # C, H, W
        clip = torch.stack(frames, dim=1)  # C, T, H, W
        if self.layout == "segments":  # (C·clip_len, num_clips, H, W) as ours
            clip = clip.view(3, self.num_clips, self.clip_len, *clip.shape[-2:]).permute(2, 0, 1, 3, 4)
            clip = clip.reshape(self.clip_len * 3, self.num_clips, *clip.shape[-2:])
        return clip, label, item


def make_data(tmp, videos, frames, frame_size):
    from prep.datasets.synthetic import generate
    from prep.frames import run_frames
    from prep.datasets import build_index

    classes = 4
    generate(tmp / "raw", seed=0, num_classes=classes, videos_per_class=max(1, videos // classes),
             frame_size=frame_size, min_frames=frames, max_frames=frames, containers=("mp4",))
    index, _ = build_index("synthetic", tmp / "raw" / "splits", tmp / "raw" / "videos")
    pairs = [(v, tmp / "raw" / "videos" / p) for v, p in zip(index["video_id"], index["video_path"])]
    labels = dict(zip(index["video_id"], index["label"]))
    options = dict(short_side=None, size=None, quality=95, naming="mmaction")
    records = run_frames(pairs, tmp / "rawframes", workers=2, **options)
    run_frames(pairs, tmp / "packs", workers=2, pack=True, **options)
    return [(r["video_id"], int(r["n_frames"]), int(labels[r["video_id"]])) for r in records]


def throughput(dataset, batch, workers, normalise=False):
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False)
    iterator = iter(loader)
    next(iterator)  # workers started, first batch out
    started, clips = time.perf_counter(), 0
    for batch_clips, _, _ in iterator:
        if normalise:
            normalize_on_device(batch_clips, "rgb")
        clips += len(batch_clips)
    return clips / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--frame-size", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--clips", type=int, default=96, help="clips per measurement (cycling over the videos)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_dataloader_") as tmp:
        tmp = Path(tmp)
        started = time.time()
        items = make_data(tmp, args.videos, args.frames, args.frame_size)
        print(f"data: {len(items)} videos × {args.frames} frames, {args.frame_size}px "
              f"({time.time() - started:.1f} s to make)", flush=True)
        rows = []
        for name, sampling in SAMPLINGS.items():
            common = dict(input_size=args.input_size, resize_short=args.input_size, **sampling)
            contenders = {
                "ours, rawframes": (RawframeDataset(items, tmp / "rawframes", "rgb", **common), False),
                "ours, packs": (RawframeDataset(items, tmp / "packs", "rgb", **common), False),
                "ours, packs + CPU normalise": (RawframeDataset(items, tmp / "packs", "rgb", **common), True),
                "naive (PIL, float per frame)": (NaiveDataset(items, tmp / "rawframes",
                                                              input_size=args.input_size, **sampling), False),
            }
            best = {label: 0.0 for label in contenders}
            for _ in range(args.repeats):
                for label, (dataset, normalise) in contenders.items():
                    rate = throughput(Repeated(dataset, args.clips), args.batch, args.workers, normalise)
                    best[label] = max(best[label], rate)
            naive = best["naive (PIL, float per frame)"]
            for label, rate in best.items():
                rows.append((name, label, rate, rate / naive))
                print(f"{name:9s} {label:30s} {rate:8.1f} clips/s  {rate / naive:5.2f}× naive", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    print("\n| sampling | loader | clips/s | × naive |\n|---|---|---:|---:|")
    for name, label, rate, ratio in rows:
        print(f"| {name} | {label} | {rate:.1f} | {ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
