"""Classify a video with a trained checkpoint: the recipe's test preset (train/presets.py, the one evaluation uses),
then the top-k classes.

    python -m train.predict VIDEO --checkpoint work/tsm_synthetic_rgb/final.pt [--top 5] [--accurate]
    python -m train.predict data/ucf101/rawframes/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01 --checkpoint …

VIDEO is a video file, or a video's prepared frames (a folder of frames or a ``.pack``; for a flow checkpoint its
flow frames). From a video file, RGB checkpoints take the decoded frames and flow checkpoints compute TV-L1 flow
(bound from --bound, as the pipeline quantizes it) between the consecutive frames they sample. Prints one line per
class: probability and name. On prepared frames the probabilities are exactly those evaluation computes.
"""
import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from prep.base.media import DecodeError, VideoReader
from prep.base.packed import PACK_SUFFIX
from train.data import FrameDataset, FrameSource
from train.evaluate import score_dataset
from train.export import model_from_state
from train.presets import eval_sampler, eval_transform


def decode_video(path):
    """Every decoded frame as RGB uint8 (N, H, W, 3) — the same frames `prep frames` writes (prep.base.media's one
    decoder: rotation applied, damaged packets skipped)."""
    try:
        with VideoReader(path) as video:
            frames = list(video.arrays("rgb24"))
    except DecodeError as error:
        raise SystemExit(f"error: {error}") from None
    if not frames:
        raise SystemExit(f"error: {path}: no decodable video frames")
    return np.stack(frames)


class DecodedFrames:
    """The frame-source interface (``len``, ``read(k, reduce)``) over a decoded video: its RGB frames, or the TV-L1
    flow between frames k and k + 1 (mmaction naming: N − 1 flow frames), quantized as the pipeline stores it."""

    def __init__(self, path, frames, modality, bound=20.0, flow_backend="opencv", flow_device="auto"):
        self.path, self.video_id, self.frames, self.modality, self.bound = str(path), "", frames, modality, bound
        self.flow_backend, self.flow_device = flow_backend, flow_device
        self.estimate = None
        self.flow_cache = {}

    def __len__(self):
        return len(self.frames) if self.modality == "rgb" else len(self.frames) - 1

    def read(self, k, reduce=1):
        image = self.frames[k - 1] if self.modality == "rgb" else self.flow(k)
        if reduce == 1:
            return image
        height, width = image.shape[:2]
        return cv2.resize(image, (math.ceil(width / reduce), math.ceil(height / reduce)),
                          interpolation=cv2.INTER_AREA)

    def flow(self, k):
        if k not in self.flow_cache:
            from prep.base.optical_flow import create_estimator, quantize  # TV-L1 as `prep flow` computes it

            self.estimate = self.estimate or create_estimator("tvl1", self.flow_backend, self.flow_device)
            gray = [cv2.cvtColor(self.frames[i], cv2.COLOR_RGB2GRAY) for i in (k - 1, k)]
            flow = self.estimate(gray[0], gray[1])
            self.flow_cache[k] = np.stack([quantize(flow[..., 0], self.bound), quantize(flow[..., 1], self.bound)],
                                          axis=-1)
        return self.flow_cache[k]

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DecodedSource:
    def __init__(self, frames):
        self.frames = frames

    def open(self, video_id):
        return self.frames


def video_dataset(video, settings, accurate=False, bound=20.0, naming="mmaction", flow_backend="opencv",
                  flow_device="auto"):
    """A one-video test dataset of a video file or of a video's prepared frames (folder or pack)."""
    video = Path(video)
    mode = settings["mode"]
    if video.is_dir() or video.name.endswith(PACK_SUFFIX):
        video_id = video.name[:-len(PACK_SUFFIX)] if video.name.endswith(PACK_SUFFIX) else video.name
        source = FrameSource(str(video.parent), mode, naming)
        with source.open(video_id) as frames:
            total = len(frames)
    else:
        frames = DecodedFrames(video, decode_video(video), mode, bound, flow_backend, flow_device)
        source, video_id, total = DecodedSource(frames), video.name, len(frames)
    if total < 1:
        raise SystemExit(f"error: {video}: " + ("no frames" if mode == "rgb" else "a flow model needs two frames"))
    return FrameDataset([(video_id, total, 0)], source, eval_sampler(settings, accurate),
                        eval_transform(settings, accurate), seed=settings["seed"])


def video_probabilities(scores, average_clips):
    """Class probabilities from a video's evaluation scores (probabilities already, or mean logits)."""
    return scores if average_clips == "prob" else scores.softmax(dim=-1)


def predict_video(video, checkpoint, top=5, accurate=False, bound=20.0, naming="mmaction", flow_backend=None,
                  flow_device="auto"):
    """[(class name, probability)] of the top classes. A flow checkpoint's flow is computed by ``flow_backend``,
    by default the one that made its training data (recorded by train.train; opencv for older checkpoints)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model, settings, classes = model_from_state(state, checkpoint)
    flow_backend = flow_backend or (state.get("run_info") or {}).get("flow_backend") or "opencv"
    dataset = video_dataset(video, settings, accurate, bound, naming, flow_backend, flow_device)
    with torch.no_grad():
        scores = score_dataset(model, dataset, settings, len(classes), torch.device("cpu"), settings["eval_batch"])[0]
    probabilities = video_probabilities(scores, settings["average_clips"])
    values, indices = probabilities.topk(min(top, len(classes)))
    return [(classes[i], float(v)) for v, i in zip(values, indices)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="a video file (.avi, .mp4, …), or a video's frames folder / .pack")
    parser.add_argument("--checkpoint", required=True, help="final.pt / best.pt of a run")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--accurate", action="store_true", help="the recipe's accurate test mode (views × crops)")
    parser.add_argument("--bound", type=float, default=20.0, help="flow quantization bound (flow checkpoints)")
    parser.add_argument("--naming", default="mmaction", help="frame naming of a frames folder / pack")
    parser.add_argument("--flow-backend", choices=("opencv", "torch"), default=None,
                        help="who computes a video's TV-L1 flow (flow checkpoints; default: the backend that made "
                             "the training data, as the checkpoint records it)")
    parser.add_argument("--flow-device", default="auto", help="torch flow backend: auto, cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    for name, probability in predict_video(args.video, args.checkpoint, args.top, args.accurate, args.bound,
                                           args.naming, args.flow_backend, args.flow_device):
        print(f"{probability:.4f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
