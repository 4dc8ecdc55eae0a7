"""Classify a video with a trained checkpoint: the recipe's test preset (train/presets.py, the one evaluation uses),
then the top-k classes.

    python -m train.predict VIDEO --checkpoint work/tsm_synthetic_rgb/final.pt [--top 5] [--accurate]
    python -m train.predict data/ucf101/rawframes/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01 --checkpoint …

VIDEO is a video file, or a video's prepared frames (a folder of frames or a ``.pack``; for a flow checkpoint its
flow frames, read with the names their tree's record says). From a video file, RGB checkpoints take the decoded
frames and flow checkpoints compute flow between the frames they sample as the tree the run was trained on was made
(its record, kept in the checkpoint: algorithm, backend, bound, naming). Prints one line per class: probability and
name. On prepared frames the probabilities are exactly those evaluation computes.
"""
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from prep.base import arguments
from prep.base.errors import UserError
from prep.base.frame_source import naming_of
from prep.base.media import DecodeError, VideoReader
from prep.base.packed import PACK_SUFFIX
from prep.base.trees import agree, conventions, find_tree_root, tree_conventions
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
    """The frame-source interface (``len``, ``read(k, reduce)``) over a decoded video: its RGB frames, or its flow
    as ``prep flow`` makes it under ``flow`` (:func:`prep.base.trees.conventions` of a flow tree: algorithm,
    backend, bound, naming — which frames flow k joins), quantized as the pipeline stores it."""

    def __init__(self, path, frames, modality, flow=None, flow_backend=None, flow_device="auto"):
        self.path, self.video_id, self.frames, self.modality = str(path), "", frames, modality
        self.conventions = flow or conventions(None, "flow", "the defaults")
        self.naming = naming_of(self.conventions["naming"])
        # the backends are bit-exact twins: the tree's by default, another for speed (a GPU)
        self.flow_backend, self.flow_device = flow_backend or self.conventions["backend"], flow_device
        self.estimate = None
        self.flow_cache = {}

    def __len__(self):
        return len(self.frames) if self.modality == "rgb" else self.naming.flow_count(len(self.frames))

    def read(self, k, reduce=1):
        image = self.frames[k - 1] if self.modality == "rgb" else self.flow(k)
        if reduce == 1:
            return image
        height, width = image.shape[:2]
        return cv2.resize(image, (math.ceil(width / reduce), math.ceil(height / reduce)),
                          interpolation=cv2.INTER_AREA)

    def read_many(self, numbers, reduce=1):
        """``(k, image)`` for each distinct frame number, in increasing order (the frame-source interface the
        transforms read through, train/data/transforms.py)."""
        for k in sorted({int(k) for k in np.asarray(numbers).reshape(-1).tolist()}):
            yield k, self.read(k, reduce)

    def flow(self, k):
        if k not in self.flow_cache:
            from prep.base.optical_flow import create_estimator, quantize  # as `prep flow` computes it

            self.estimate = self.estimate or create_estimator(self.conventions["algorithm"], self.flow_backend,
                                                              self.flow_device, self.conventions.get("parameters"))
            gray = [cv2.cvtColor(self.frames[i - 1], cv2.COLOR_RGB2GRAY) for i in self.naming.flow_pair(k)]
            flow = self.estimate(gray[0], gray[1])
            bound = self.conventions["bound"]
            self.flow_cache[k] = np.stack([quantize(flow[..., 0], bound), quantize(flow[..., 1], bound)], axis=-1)
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


def video_dataset(video, settings, accurate=False, trained_on=None, naming=None, bound=None, flow_backend=None,
                  flow_device="auto"):
    """A one-video test dataset of a video file or of a video's prepared frames (folder or pack). ``trained_on``:
    the conventions of the tree the checkpoint was trained on (its run_info), which a video's own tree must share
    and which flow from a video file follows; ``naming`` / ``bound``: flags, for what no record says;
    ``flow_backend`` / ``flow_device``: who computes a video file's flow (default: the backend of the run's tree)."""
    video = Path(video)
    mode = settings["mode"]
    where = "the checkpoint (the tree it was trained on)"
    if video.is_dir() or video.name.endswith(PACK_SUFFIX):
        video_id = video.name[:-len(PACK_SUFFIX)] if video.name.endswith(PACK_SUFFIX) else video.name
        tree_root = find_tree_root(video.parent) or video.parent  # the video's tree: its record names the files
        found = tree_conventions(tree_root, mode, naming=naming, **({"bound": bound} if mode == "flow" else {}))
        if trained_on:
            agree(mode, trained_on, found, where, f"the tree at {tree_root}")
        source = FrameSource(str(video.parent), mode, found["naming"])
        with source.open(video_id) as frames:
            total = len(frames)
    else:
        flow = conventions(trained_on, "flow", where, bound=bound) if mode == "flow" else None
        frames = DecodedFrames(video, decode_video(video), mode, flow, flow_backend, flow_device)
        source, video_id, total = DecodedSource(frames), video.name, len(frames)
    if total < 1:
        raise SystemExit(f"error: {video}: " + ("no frames" if mode == "rgb" else "a flow model needs two frames"))
    return FrameDataset([(video_id, total, 0)], source, eval_sampler(settings, accurate),
                        eval_transform(settings, accurate), seed=settings["seed"])


def video_probabilities(scores, average_clips):
    """Class probabilities from a video's evaluation scores (probabilities already, or mean logits)."""
    return scores if average_clips == "prob" else scores.softmax(dim=-1)


def predict_video(video, checkpoint, top=5, accurate=False, bound=None, naming=None, flow_backend=None,
                  flow_device="auto"):
    """[(class name, probability)] of the top classes; ``bound`` / ``naming``: flags for what no record says. A flow
    checkpoint's flow is computed as the tree it was trained on was made (its record in run_info), by
    ``flow_backend`` if given (the backends are twins)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model, settings, classes = model_from_state(state, checkpoint)
    run_info = state.get("run_info") or {}
    trained_on = run_info.get("tree")
    if trained_on is None and run_info.get("flow_backend"):  # a checkpoint from before tree records
        trained_on = {"backend": run_info["flow_backend"]}
    dataset = video_dataset(video, settings, accurate, trained_on, naming, bound, flow_backend, flow_device)
    with torch.no_grad():
        scores = score_dataset(model, dataset, settings, len(classes), torch.device("cpu"), settings["eval_batch"])[0]
    probabilities = video_probabilities(scores, settings["average_clips"])
    values, indices = probabilities.topk(min(top, len(classes)))
    return [(classes[i], float(v)) for v, i in zip(values, indices)]


def main(argv=None):
    parser = arguments.Parser(prog="python -m train.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=arguments.input_path,
                        help="a video file (.avi, .mp4, …), or a video's frames folder / .pack")
    parser.add_argument("--checkpoint", required=True, type=arguments.input_file, help="final.pt / best.pt of a run")
    parser.add_argument("--top", type=arguments.count(1), default=5)
    parser.add_argument("--accurate", action="store_true", help="the recipe's accurate test mode (views × crops)")
    parser.add_argument("--bound", type=arguments.number(above=0), default=None,
                        help="flow quantization bound, for a checkpoint or tree without a record (default 20)")
    parser.add_argument("--naming", default=None, help="frame naming of a frames folder / pack whose tree has no "
                                                       "record (default mmaction)")
    parser.add_argument("--flow-backend", choices=("opencv", "torch"), default=None,
                        help="who computes a video's TV-L1 flow (flow checkpoints; default: the backend that made "
                             "the training data, as the checkpoint records it; the two are bit-exact twins)")
    parser.add_argument("--flow-device", default="auto", help="torch flow backend: auto, cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    try:
        predictions = predict_video(args.video, args.checkpoint, args.top, args.accurate, args.bound, args.naming,
                                    args.flow_backend, args.flow_device)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, probability in predictions:
        print(f"{probability:.4f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
