"""Classify a raw video file with a trained checkpoint: decode, the recipe's test pipeline, top-k classes.

    python -m train.predict VIDEO --checkpoint work/tsm_synthetic_rgb/final.pt [--top 5] [--accurate]

RGB checkpoints take the decoded frames; flow checkpoints compute TV-L1 flow (bound from --bound, as the pipeline
quantizes it) between the consecutive frames they sample. Prints one line per class: probability and name.
"""
import argparse
import sys

import cv2
import numpy as np
import torch

from train.data import RawframeDataset, normalize_on_device
from train.export import load_checkpoint


def decode_video(path):
    """Every decoded frame as RGB uint8 (N, H, W, 3) — the same frames `prep frames` would write."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"error: {path}: cannot open as a video")
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise SystemExit(f"error: {path}: no decodable video frames")
    return np.stack(frames)


class DecodedVideo(RawframeDataset):
    """The training data pipeline over frames held in memory (rgb) or flow computed on demand."""

    def __init__(self, frames, settings, accurate, bound):
        from prep.base.optical_flow import create_estimator

        total = len(frames) if settings["mode"] == "rgb" else len(frames) - 1
        views = settings["test_views"] if accurate else 1
        crops = settings["test_crops"] if accurate else "center"
        num_clips = (settings["test_num_clips"] or settings["num_clips"]) if accurate else settings["num_clips"]
        super().__init__([("video", total, 0)], ".", settings["mode"], num_clips, settings["clip_len"],
                         settings["frame_interval"], layout=settings["layout"], test_mode=True,
                         input_size=settings["input_size"], resize_short=settings["resize_short"], views=views,
                         crops=crops)
        self.frames = frames
        self.bound = bound
        self.estimate = create_estimator("tvl1") if settings["mode"] == "flow" else None
        self.flow_cache = {}

    def load_frames(self, video_id, numbers):
        if self.mode == "rgb":
            return self.frames[numbers.reshape(-1) - 1]
        from prep.base.optical_flow import quantize

        stacked = []
        for n in numbers.reshape(-1):
            if n not in self.flow_cache:  # flow n: frame n -> n+1 (1-based), quantized as the pipeline stores it
                gray = [cv2.cvtColor(self.frames[i], cv2.COLOR_RGB2GRAY) for i in (n - 1, n)]
                flow = self.estimate(gray[0], gray[1])
                self.flow_cache[n] = np.stack([quantize(flow[..., 0], self.bound), quantize(flow[..., 1], self.bound)],
                                              axis=-1)
            stacked.append(self.flow_cache[n])
        return np.stack(stacked)


def predict_video(video, checkpoint, top=5, accurate=False, bound=20.0):
    """[(class name, probability)] of the top classes."""
    model, settings, classes = load_checkpoint(checkpoint)
    frames = decode_video(video)
    if settings["mode"] == "flow" and len(frames) < 2:
        raise SystemExit(f"error: {video}: a flow model needs at least two frames")
    clips, _, _ = DecodedVideo(frames, settings, accurate, bound)[0]
    with torch.no_grad():
        logits = model(normalize_on_device(clips, settings["mode"], settings["normalize"]))
    probabilities = logits.softmax(dim=1).mean(dim=0)
    values, indices = probabilities.topk(min(top, len(classes)))
    return [(classes[i], float(v)) for v, i in zip(values, indices)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="a video file (.avi, .mp4, …)")
    parser.add_argument("--checkpoint", required=True, help="final.pt / best.pt of a run")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--accurate", action="store_true", help="the recipe's accurate test mode (views × crops)")
    parser.add_argument("--bound", type=float, default=20.0, help="flow quantization bound (flow checkpoints)")
    args = parser.parse_args(argv)
    for name, probability in predict_video(args.video, args.checkpoint, args.top, args.accurate, args.bound):
        print(f"{probability:.4f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
