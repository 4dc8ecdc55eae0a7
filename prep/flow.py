"""Frames → optical flow JPEGs: ``OUT/[class/]video/flow_x_00001.jpg``, ``flow_y_00001.jpg`` …

N−1 flow frames for N RGB frames: flow k is the motion from frame k to frame k+1 (1-based). TV-L1 is OpenCV
contrib's ``DualTVL1OpticalFlow_create()`` with default parameters on grayscale frames; each component is quantized
with bound b into a grayscale JPEG: v > b → 255, v < −b → 0, else round(255·(v + b) / 2b), rounding half up.
Each video's flow is written aside and renamed into place when complete.
"""
import time
from pathlib import Path

import cv2
import numpy as np

from prep import UserError
from prep.atomic import atomic_directory, remove_stale_temporaries
from prep.frames import NAMING
from prep.shards import add_selection_arguments, index_videos, run_pool, select_shard, summarise, write_report

REPORT_COLUMNS = ["video_id", "status", "n_flow", "note", "seconds"]
ALGORITHMS = ("tvl1", "dis", "farneback")


def create_estimator(algorithm):
    """A callable (previous_gray, next_gray) -> flow (H, W, 2) float32."""
    if algorithm == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise UserError("OpenCV without the contrib modules: TV-L1 needs "
                            "`pip install opencv-contrib-python-headless` (and no plain opencv-python beside it)")
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda prev, nxt: tvl1.calc(prev, nxt, None)
    if algorithm == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda prev, nxt: dis.calc(prev, nxt, None)
    if algorithm == "farneback":
        return lambda prev, nxt: cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise UserError(f"unknown flow algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


def quantize(component, bound=20.0):
    """Flow component (pixels) → uint8: linear in [−bound, bound], saturated outside, round half up."""
    scaled = (np.clip(component, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.floor(scaled + 0.5).astype(np.uint8)


def read_gray(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: unreadable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def frame_paths(frame_dir, naming="mmaction"):
    """The RGB frames of a directory in index order; a gap in the numbering is an error, not a silent skip."""
    prefix = NAMING[naming].split("{")[0]
    paths = sorted(p for p in Path(frame_dir).iterdir() if p.name.startswith(prefix) and p.suffix == ".jpg")
    for expected, path in enumerate(paths, start=1):
        if path.name != NAMING[naming].format(expected):
            raise ValueError(f"{frame_dir}: frames are not numbered 1..N ({path.name} where "
                             f"{NAMING[naming].format(expected)} was expected)")
    return paths


def compute_flow(frame_dir, out_dir, algorithm="tvl1", bound=20.0, quality=95, naming="mmaction"):
    """Write the flow of one frame directory into ``out_dir`` (which must not exist); return a report record."""
    started = time.time()
    paths = frame_paths(frame_dir, naming)
    if len(paths) < 2:
        return {"status": f"quarantined: {len(paths)} frame(s), flow needs two", "n_flow": 0, "note": "",
                "seconds": 0.0}
    estimate = create_estimator(algorithm)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    with atomic_directory(out_dir) as tmp:
        previous = read_gray(paths[0])
        for index, path in enumerate(paths[1:], start=1):
            current = read_gray(path)
            flow = estimate(previous, current)
            for axis, name in ((0, "x"), (1, "y")):
                ok, encoded = cv2.imencode(".jpg", quantize(flow[..., axis], bound), params)
                (tmp / f"flow_{name}_{index:05d}.jpg").write_bytes(encoded.tobytes())
            previous = current
    return {"status": "done", "n_flow": len(paths) - 1, "note": "", "seconds": round(time.time() - started, 3)}


def count_flow(flow_dir):
    return sum(1 for p in Path(flow_dir).iterdir() if p.name.startswith("flow_x_"))


def process_video(video_id, frames_root, out_root, options):
    out_dir = Path(out_root) / video_id
    if out_dir.is_dir():
        return dict(video_id=video_id, status="skipped", n_flow=count_flow(out_dir), note="", seconds=0.0)
    frame_dir = Path(frames_root) / video_id
    if not frame_dir.is_dir():
        return dict(video_id=video_id, status="quarantined: no frames", n_flow=0, note="", seconds=0.0)
    try:
        return dict(video_id=video_id, **compute_flow(frame_dir, out_dir, **options))
    except ValueError as error:
        return dict(video_id=video_id, status=f"quarantined: {error}", n_flow=0, note="", seconds=0.0)


def run_flow(video_ids, frames_root, out_root, workers=1, report=None, **options):
    """Flow for every video id whose frames are under frames_root; skip finished ones; return report records."""
    started = time.time()
    if Path(out_root).resolve() == Path(frames_root).resolve():
        raise UserError("flow OUT_DIR equals SRC_DIR: write flow to its own tree (each video's flow directory is "
                        "renamed into place whole, which needs a directory of its own)")
    create_estimator(options.get("algorithm", "tvl1"))  # fail early, once, on a missing backend
    for parent in {(Path(out_root) / vid).parent for vid in video_ids}:
        remove_stale_temporaries(parent)
    jobs = [(vid, str(frames_root), str(out_root), options) for vid in video_ids]
    records = list(run_pool(process_video, jobs, workers, desc="flow"))
    if report:
        write_report(records, report, REPORT_COLUMNS)
    print(summarise(records, "flow", started))
    return records


def frame_directories(frames_root, level):
    frames_root = Path(frames_root)
    if not frames_root.is_dir():
        raise UserError(f"{frames_root}: no such directory")
    pattern = "*/*" if level == 2 else "*"
    return sorted(p.relative_to(frames_root).as_posix() for p in frames_root.glob(pattern)
                  if p.is_dir() and not p.name.startswith("."))


def run(args):
    if args.index:
        video_ids = [vid for vid, _ in index_videos(args.index)]
    else:
        video_ids = frame_directories(args.src_dir, args.level)
    video_ids = select_shard(video_ids, args.shard, args.num_shards)
    run_flow(video_ids, args.src_dir, args.out_dir, workers=args.workers, report=args.report,
             algorithm=args.algorithm, bound=args.bound, quality=args.quality)
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("flow", help="optical flow (TV-L1) from rawframes into flow_x_/flow_y_ JPEGs",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("src_dir", help="rawframes root: SRC/[class/]video/img_00001.jpg")
    parser.add_argument("out_dir", help="flow root: OUT/[class/]video/flow_x_00001.jpg")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="tvl1")
    parser.add_argument("--bound", type=float, default=20.0, help="quantization bound in pixels (default 20)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)
