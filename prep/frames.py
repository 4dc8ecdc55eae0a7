"""Video → JPEG frames: ``OUT/[class/]video/img_00001.jpg …``, one per decoded frame (1-based).

Frames are counted as the decoder returns them — never through the ffmpeg CLI, whose default vsync duplicates or
drops frames to fit a constant rate. A video that decodes to fewer frames than its container claims keeps what
decoded and says so in the report's ``note``. Each video's frames go to a temporary directory renamed into place
when complete, with an ``n_frames`` file (the largest image index, as 3D-ResNets / MindSpore-I3D read it).
"""
import argparse
import time
from pathlib import Path

import cv2

from prep import UserError
from prep.atomic import atomic_directory, remove_stale_temporaries
from prep.shards import (add_selection_arguments, discover_videos, index_videos, run_pool, select_shard, summarise,
                         write_report)

NAMING = {"mmaction": "img_{:05d}.jpg", "3dresnets": "image_{:05d}.jpg"}
REPORT_COLUMNS = ["video_id", "status", "n_frames", "container_frames", "fps", "width", "height", "note", "seconds"]


def output_size(width, height, short_side=None, size=None):
    """(width, height) of the written frames: unchanged, fixed ``size``, or short side scaled to ``short_side``."""
    if size:
        return size
    if short_side:
        if width <= height:
            return short_side, max(1, round(height * short_side / width))
        return max(1, round(width * short_side / height)), short_side
    return width, height


def extract_frames(video_path, out_dir, short_side=None, size=None, quality=95, naming="mmaction"):
    """Decode ``video_path`` into ``out_dir`` (which must not exist); return a report record (without video_id)."""
    started = time.time()
    pattern = NAMING[naming]
    video_path = Path(video_path)
    record = {"status": "done", "n_frames": 0, "container_frames": 0, "fps": 0.0, "width": 0, "height": 0,
              "note": ""}
    if not video_path.is_file():
        return dict(record, status="quarantined: file not found", seconds=0.0)
    if video_path.stat().st_size == 0:
        return dict(record, status="quarantined: empty file", seconds=0.0)
    capture = cv2.VideoCapture(str(video_path))
    try:
        if not capture.isOpened():
            return dict(record, status="quarantined: cannot open (no video stream or unknown format)", seconds=0.0)
        record.update(container_frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                      fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0))
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        with atomic_directory(out_dir) as tmp:
            count = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if count == 0:
                    record.update(height=frame.shape[0], width=frame.shape[1])
                    target = output_size(frame.shape[1], frame.shape[0], short_side, size)
                if target != (frame.shape[1], frame.shape[0]):
                    frame = cv2.resize(frame, target, interpolation=cv2.INTER_LINEAR)
                count += 1
                ok, encoded = cv2.imencode(".jpg", frame, params)
                (tmp / pattern.format(count)).write_bytes(encoded.tobytes())
            if count == 0:
                raise _NoFrames()
            (tmp / "n_frames").write_text(f"{count}\n")
    except _NoFrames:
        return dict(record, status="quarantined: no decodable video frames", seconds=time.time() - started)
    finally:
        capture.release()
    if record["container_frames"] and count < record["container_frames"]:
        record["note"] = f"decoded {count} of {record['container_frames']} frames the container claims"
    return dict(record, n_frames=count, seconds=round(time.time() - started, 3))


class _NoFrames(Exception):
    pass


def count_frames(frame_dir, naming="mmaction"):
    """Number of frames in a finished frame directory (from its ``n_frames`` file, else by listing)."""
    marker = Path(frame_dir) / "n_frames"
    if marker.is_file():
        return int(marker.read_text().split()[0])
    prefix = NAMING[naming].split("{")[0]
    return sum(1 for p in Path(frame_dir).iterdir() if p.name.startswith(prefix))


def probe(video_path):
    """Container facts without decoding: frame count, fps, width, height."""
    capture = cv2.VideoCapture(str(video_path))
    try:
        return {"container_frames": max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                "fps": float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    finally:
        capture.release()


def process_video(video_id, video_path, out_root, options):
    out_dir = Path(out_root) / video_id
    if out_dir.is_dir():  # renamed into place only when complete
        return dict(video_id=video_id, status="skipped", n_frames=count_frames(out_dir, options["naming"]),
                    note="", seconds=0.0, **probe(video_path))
    return dict(video_id=video_id, **extract_frames(video_path, out_dir, **options))


def run_frames(videos, out_root, workers=1, report=None, **options):
    """Extract every ``(video_id, path)``; skip finished videos; return the report records."""
    started = time.time()
    out_root = Path(out_root)
    for parent in {(out_root / vid).parent for vid, _ in videos}:
        remove_stale_temporaries(parent)
    jobs = [(vid, str(path), str(out_root), options) for vid, path in videos]
    records = list(run_pool(process_video, jobs, workers, desc="frames"))
    if report:
        write_report(records, report, REPORT_COLUMNS)
    print(summarise(records, "frames", started))
    return records


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 340x256") from None
    return width, height


def run(args):
    if args.new_width or args.new_height:
        if not (args.new_width and args.new_height):
            raise UserError("--new-width and --new-height go together")
        args.size = (args.new_width, args.new_height)
    if args.size and args.short_side:
        raise UserError("--size and --short-side exclude each other")
    if args.index:
        videos = index_videos(args.index)
        videos = [(vid, Path(args.video_dir) / path) for vid, path in videos]
    else:
        videos = discover_videos(args.video_dir, args.level, {e.strip().lower() for e in args.ext.split(",")})
    videos = select_shard(videos, args.shard, args.num_shards)
    run_frames(videos, args.out_dir, workers=args.workers, report=args.report, short_side=args.short_side,
               size=args.size, quality=args.quality, naming=args.naming)
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("frames", help="decode videos into JPEG frames (img_00001.jpg …)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("video_dir", help="directory of videos (SRC/class/video.ext with --level 2)")
    parser.add_argument("out_dir", help="rawframes root: OUT/[class/]video/img_00001.jpg")
    parser.add_argument("--ext", default="avi,mp4,mkv,webm,mov", help="video extensions to take (comma list)")
    parser.add_argument("--short-side", "--new-short", type=int, help="resize so the short side has this length")
    parser.add_argument("--size", type=parse_size, help="resize to WIDTHxHEIGHT, e.g. 340x256")
    parser.add_argument("--new-width", type=int, help="mmaction2 alias: width of --size")
    parser.add_argument("--new-height", type=int, help="mmaction2 alias: height of --size")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--naming", choices=sorted(NAMING), default="mmaction",
                        help="img_00001.jpg (mmaction2, PaddleVideo) or image_00001.jpg (3D-ResNets, MindSpore-I3D)")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)
