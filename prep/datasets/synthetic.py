"""The synthetic motion dataset: the default config's only dataset, generated deterministically from a seed.

Classes come in time-reversed pairs (move left/right, up/down, rotate cw/ccw, zoom in/out) of a randomly textured
object over a randomly textured background. The second class of a pair is a first-class clip played backwards, so
every single frame has the same distribution in both classes: only temporal order tells them apart. An order-free
model (TSN rgb) is therefore capped at chance within each pair, while flow and temporal models are not — the
signature the end-to-end test checks.

Videos are real files encoded with ffmpeg (xvid ``.avi`` as UCF101 ships, h264 ``.mp4`` as Kinetics ships) in
UCF101's layout (``videos/<Class>/v_<Class>_gGG_cCC.ext``) with UCF101-style split files (``splits/classInd.txt``,
``trainlist0N.txt``, ``testlist0N.txt``, CRLF line ends), so :mod:`prep.datasets.ucf101` reads them.
"""
import functools
import shutil
from pathlib import Path

import cv2
import numpy as np

from prep.base import arguments
from prep.base.atomic import atomic_directory
from prep.base.errors import UserError
from prep.base.media import encode_video
from prep.datasets import DatasetFacts, split_list_name, ucf101

# the dataset interface (prep.datasets): generated, never downloaded (no sources); UCF101's file layout, so UCF101's
# readers; the default config's 8 classes × 24 videos, a few hundred tiny videos kept as JPEG frames
# TV-L1 stops at epsilon 0.05: on these 64-pixel frames of busy texture it ran to its iteration cap at OpenCV's 0.01
# (122 ms a pair, 40 % of the default run's CPU); at 0.05 a pair takes 18 ms, 0.08 px mean end-point error from the
# 0.01 flow, and the flow streams still test 1.0
FACTS = DatasetFacts(name="synthetic", videos=192, video_extensions=(".avi", ".mp4"), tvl1={"epsilon": 0.05})
locate_videos = ucf101.locate_videos
list_name = functools.partial(split_list_name, "synthetic")


def read_index(splits_dir):
    return ucf101.read_index(splits_dir, name="synthetic")


def json_name(split, subset):
    return f"synthetic_0{split}.json"


# (forward class, its time reversal)
MOTION_PAIRS = [
    ("MoveRight", "MoveLeft"),
    ("MoveDown", "MoveUp"),
    ("RotateClockwise", "RotateCounterclockwise"),
    ("ZoomIn", "ZoomOut"),
]
CONTAINERS = {"avi", "mp4"}


def class_names(num_classes):
    """The first ``num_classes`` classes, pairs kept together (num_classes must be even)."""
    if num_classes % 2 or not 2 <= num_classes <= 2 * len(MOTION_PAIRS):
        raise UserError(f"synthetic.num_classes: {num_classes} must be even and between 2 and {2 * len(MOTION_PAIRS)}")
    return [name for pair in MOTION_PAIRS[: num_classes // 2] for name in pair]


def random_texture(rng, height, width, cells, contrast, detail):
    """Colour blobs (``cells`` across, ``contrast`` 0–1) plus grey fine detail (amplitude ``detail``)."""
    coarse = rng.uniform(-127, 127, size=(cells, cells, 3)).astype(np.float32) * contrast
    coarse = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) + rng.uniform(60, 196)
    fine = rng.uniform(-detail, detail, size=(height // 2 + 1, width // 2 + 1, 1)).astype(np.float32)
    fine = cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    return np.clip(coarse + fine, 0, 255)


def object_layer(rng, size):
    """A textured ellipse or rectangle centred in a ``size`` square: (texture, soft alpha mask)."""
    # busier and stronger than any background, so the object stands out and TV-L1 has texture to track
    texture = random_texture(rng, size, size, cells=6, contrast=1.0, detail=70)
    mask = np.zeros((size, size), np.float32)
    centre = (size // 2, size // 2)
    half_w, half_h = int(size * rng.uniform(0.3, 0.45)), int(size * rng.uniform(0.18, 0.3))
    if rng.random() < 0.5:
        cv2.ellipse(mask, centre, (half_w, half_h), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    else:
        cv2.rectangle(mask, (centre[0] - half_w, centre[1] - half_h), (centre[0] + half_w, centre[1] + half_h), 1.0, -1)
    return texture, cv2.GaussianBlur(mask, (3, 3), 0)


def trajectory(motion, rng, num_frames, frame_size):
    """Per-frame (dx, dy, angle_degrees, scale) of the object for a forward motion."""
    steps = np.arange(num_frames, dtype=np.float64)
    dx = np.zeros(num_frames)
    dy = np.zeros(num_frames)
    angle = np.zeros(num_frames)
    scale = np.ones(num_frames)
    if motion in ("MoveRight", "MoveDown"):
        speed = rng.uniform(0.8, 1.4)  # pixels per frame, well inside the flow bound
        travel = speed * (num_frames - 1)
        start = rng.uniform(-0.5, 0.5) * max(frame_size * 0.5 - travel, 0) - travel / 2
        (dx if motion == "MoveRight" else dy)[:] = start + speed * steps
        (dy if motion == "MoveRight" else dx)[:] = rng.uniform(-0.1, 0.1) * frame_size
    elif motion == "RotateClockwise":
        # OpenCV's angles are counter-clockwise; at 3–6° a frame the rgb models stayed at chance on this pair; at
        # 10–15° I3D rgb failed more often over seeds 0-2 × 1/2 threads than at 6–10° (README)
        angle[:] = rng.uniform(0, 360) - rng.uniform(6.0, 10.0) * steps
        dx[:], dy[:] = rng.uniform(-0.1, 0.1, size=2) * frame_size
    elif motion == "ZoomIn":
        rate = rng.uniform(1.025, 1.045)
        scale[:] = rng.uniform(0.65, 0.8) * rate ** steps
        dx[:], dy[:] = rng.uniform(-0.1, 0.1, size=2) * frame_size
        angle[:] = rng.uniform(0, 360)
    else:
        raise ValueError(f"unknown forward motion {motion!r}")
    return dx, dy, angle, scale


def render_clip(forward_motion, reverse, rng, num_frames, frame_size):
    """RGB frames (num_frames, H, W, 3) uint8 of one clip; ``reverse`` plays the forward motion backwards."""
    background = random_texture(rng, frame_size, frame_size, cells=int(rng.integers(2, 5)), contrast=0.15, detail=8)
    object_size = int(frame_size * 0.75)
    texture, mask = object_layer(rng, object_size)
    offset = (frame_size - object_size) / 2
    frames = []
    for dx, dy, angle, scale in zip(*trajectory(forward_motion, rng, num_frames, frame_size)):
        matrix = cv2.getRotationMatrix2D((object_size / 2, object_size / 2), angle, scale)
        matrix[:, 2] += (offset + dx, offset + dy)
        warped = cv2.warpAffine(texture, matrix, (frame_size, frame_size), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask, matrix, (frame_size, frame_size), flags=cv2.INTER_LINEAR)[..., None]
        frames.append(np.clip(background * (1 - alpha) + warped * alpha + 0.5, 0, 255).astype(np.uint8))
    if reverse:
        frames.reverse()
    return np.stack(frames)


def split_membership(clip_index, num_folds, num_splits):
    """UCF101-like splits: split k tests on fold k-1 of ``num_folds`` and trains on the rest."""
    return {str(k): ("test" if clip_index % num_folds == k - 1 else "train") for k in range(1, num_splits + 1)}


def write_lines(path, lines):
    # CRLF like the official UCF101 files, so the shared reader is exercised on the real line ends
    Path(path).write_bytes("".join(f"{line}\r\n" for line in lines).encode())


def generate(out_dir, seed=0, num_classes=8, videos_per_class=24, frame_size=64, min_frames=16, max_frames=24,
             fps=25, test_fraction=0.25, num_splits=1, containers=("avi", "mp4")):
    """Write ``out_dir/videos`` and ``out_dir/splits``; atomic: out_dir appears only when complete."""
    classes = class_names(num_classes)
    if frame_size % 2 or frame_size < 32:
        raise UserError(f"synthetic.frame_size: {frame_size} must be even and at least 32 (h264 needs even sizes)")
    if not 2 <= min_frames <= max_frames:
        raise UserError(f"synthetic.min_frames/max_frames: need 2 <= min_frames ({min_frames}) <= max_frames ({max_frames})")
    unknown = set(containers) - CONTAINERS
    if unknown or not containers:
        raise UserError(f"synthetic.containers: {sorted(unknown) or '[]'} not among {sorted(CONTAINERS)}")
    num_folds = max(2, round(1 / test_fraction))
    if not 1 <= num_splits <= min(3, num_folds):
        raise UserError(f"synthetic.num_splits: {num_splits} must be between 1 and {min(3, num_folds)}")
    with atomic_directory(out_dir) as tmp:
        lists = {str(k): {"train": [], "test": []} for k in range(1, num_splits + 1)}
        for label, class_name in enumerate(classes):
            forward_motion = MOTION_PAIRS[label // 2][0]
            (tmp / "videos" / class_name).mkdir(parents=True)
            for clip in range(videos_per_class):
                # one generator per clip: any clip can be regenerated alone, identically
                rng = np.random.default_rng([seed, label, clip])
                num_frames = int(rng.integers(min_frames, max_frames + 1))
                frames = render_clip(forward_motion, label % 2 == 1, rng, num_frames, frame_size)
                ext = containers[clip % len(containers)]
                rel_path = f"{class_name}/v_{class_name}_g{clip + 1:02d}_c01.{ext}"
                encode_video(frames, tmp / "videos" / rel_path, fps=fps)
                for split, subset in split_membership(clip, num_folds, num_splits).items():
                    lists[split][subset].append(f"{rel_path} {label + 1}" if subset == "train" else rel_path)
        (tmp / "splits").mkdir()
        write_lines(tmp / "splits" / "classInd.txt", [f"{i + 1} {name}" for i, name in enumerate(classes)])
        for split, subsets in lists.items():
            write_lines(tmp / "splits" / f"trainlist0{split}.txt", subsets["train"])
            write_lines(tmp / "splits" / f"testlist0{split}.txt", subsets["test"])
    return Path(out_dir)


def run(args):
    out = Path(args.out_dir)
    if out.exists():
        if not args.force:
            print(f"{out} exists; nothing to do (use --force to regenerate)")
            return 0
        shutil.rmtree(out)
    generate(out, seed=args.seed, num_classes=args.num_classes, videos_per_class=args.videos_per_class,
             frame_size=args.frame_size, min_frames=args.min_frames, max_frames=args.max_frames, fps=args.fps,
             test_fraction=args.test_fraction, num_splits=args.num_splits, containers=args.containers.split(","))
    print(f"wrote {args.num_classes * args.videos_per_class} videos to {out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("synth", help="generate the synthetic motion dataset (videos + UCF101-style splits)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=arguments.output_dir,
                        help="dataset root; gets videos/<Class>/*.avi|mp4 and splits/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-classes", type=arguments.count(2, 8), default=8,
                        help="even, up to 8 (pairs of reversed motions)")
    parser.add_argument("--videos-per-class", type=arguments.count(1), default=24)
    parser.add_argument("--frame-size", type=arguments.side, default=64, help="square frame side in pixels")
    parser.add_argument("--min-frames", type=arguments.count(1), default=16)
    parser.add_argument("--max-frames", type=arguments.count(1), default=24)
    parser.add_argument("--fps", type=arguments.count(1, 1000), default=25)
    parser.add_argument("--test-fraction", type=arguments.number(0, 1), default=0.25)
    parser.add_argument("--num-splits", type=arguments.count(1), default=1)
    parser.add_argument("--containers", default="avi,mp4", help="comma list; clips alternate between them")
    parser.add_argument("--force", action="store_true", help="regenerate even if OUT_DIR exists")
    parser.set_defaults(func=run)

