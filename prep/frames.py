"""Video → JPEG frames: ``OUT/[class/]video/img_00001.jpg …``, one per decoded frame (1-based).

Frames are counted as the decoder returns them — never through the ffmpeg CLI, whose default vsync duplicates or
drops frames to fit a constant rate. A video that decodes to fewer frames than its container claims keeps what
decoded and says so in the report's ``note``. Each video's frames go to a temporary directory renamed into place
when complete, with an ``n_frames`` file (the largest image index, as 3D-ResNets / MindSpore-I3D read it);
``--pack`` writes the same JPEG bytes into one file per video instead, ``OUT/[class/]video.pack`` (:mod:`prep.packed`).
Decoding runs on one thread per worker (``--workers N`` uses N cores); bad videos (empty, corrupt, truncated before
the first frame, audio only) are quarantined with the reason in the report's ``status``.
"""
import argparse
import contextlib
import subprocess
import time
from pathlib import Path

import cv2

from prep import UserError
from prep.atomic import atomic_directory, atomic_file, remove_stale_temporaries
from prep.base.frame_source import NAMINGS
from prep.diskspace import write_bytes
from prep.base.packed import PACK_SUFFIX, PackWriter, open_packed
from prep.shards import (add_selection_arguments, discover_videos, index_videos, run_pool, select_shard, summarise,
                         write_report)

NAMING = {name: naming.rgb for name, naming in NAMINGS.items()}  # rgb file name per naming (frame_source's table)
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


def open_video(video_path):
    """A cv2.VideoCapture decoding on one thread (one worker = one core), or None if it cannot be opened."""
    capture = cv2.VideoCapture(str(video_path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not capture.isOpened():
        capture.release()
        capture = cv2.VideoCapture(str(video_path))  # another backend, if the build has one
    if not capture.isOpened():
        capture.release()
        return None
    return capture


def unreadable_reason(video_path):
    """Why a video cannot be opened, for the quarantine status: an empty file, no video stream (audio only), …"""
    video_path = Path(video_path)
    if not video_path.is_file():
        return "file not found"
    if video_path.stat().st_size == 0:
        return "empty file"
    try:
        from prep.media import ffmpeg_executable
        probe_run = subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", str(video_path)],
                                   capture_output=True, text=True, errors="replace", timeout=60)
        streams = [line for line in probe_run.stderr.splitlines() if line.strip().startswith("Stream #")]
    except (UserError, OSError, subprocess.SubprocessError):
        streams = None
    if streams is not None:
        if any(": Audio:" in line for line in streams) and not any(": Video:" in line for line in streams):
            return "no video stream (audio only)"
        if not any(": Video:" in line for line in streams):
            return "no video stream (not a video or unknown format)"
    return "cannot open (no video stream or unknown format)"


def decoded_note(count, container_frames):
    """The report's note when the decoder returned fewer frames than the container claims (kept, never padded)."""
    if container_frames and count < container_frames:
        return f"decoded {count} of {container_frames} frames the container claims"
    return ""


@contextlib.contextmanager
def output_writer(out_path, pack):
    """Yield ``add(name, data)`` writing into a temporary directory (or pack) that becomes ``out_path`` on success."""
    if pack:
        with atomic_file(out_path, "wb", sync=False) as handle:
            writer = PackWriter(handle)
            yield writer.add
            writer.finish()
    else:
        with atomic_directory(out_path) as tmp:
            yield lambda name, data: write_bytes(tmp / name, data)


def extract_frames(video_path, out_dir, short_side=None, size=None, quality=95, naming="mmaction", pack=False):
    """Decode ``video_path`` into ``out_dir`` (which must not exist; with ``pack`` the file ``out_dir``.pack);
    return a report record (without video_id)."""
    started = time.time()
    pattern = NAMING[naming]
    record = {"status": "done", "n_frames": 0, "container_frames": 0, "fps": 0.0, "width": 0, "height": 0,
              "note": ""}
    capture = open_video(video_path) if Path(video_path).is_file() and Path(video_path).stat().st_size else None
    if capture is None:
        return dict(record, status=f"quarantined: {unreadable_reason(video_path)}", seconds=0.0)
    out_path = Path(f"{out_dir}{PACK_SUFFIX}") if pack else Path(out_dir)
    count = 0
    try:
        record.update(container_frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                      fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0))
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        with output_writer(out_path, pack) as add:
            read, encode, resize = capture.read, cv2.imencode, cv2.resize
            ok, frame = read()
            if ok:
                record.update(height=frame.shape[0], width=frame.shape[1])
                target = output_size(frame.shape[1], frame.shape[0], short_side, size)
                scale = target != (frame.shape[1], frame.shape[0])
            while ok:
                if scale:
                    frame = resize(frame, target, interpolation=cv2.INTER_LINEAR)
                count += 1
                add(pattern.format(count), encode(".jpg", frame, params)[1])
                ok, frame = read()
            if count == 0:
                raise _NoFrames()
            add("n_frames", f"{count}\n".encode())
    except _NoFrames:
        return dict(record, status="quarantined: no decodable video frames", seconds=round(time.time() - started, 3))
    finally:
        capture.release()
    record["note"] = decoded_note(count, record["container_frames"])
    return dict(record, n_frames=count, seconds=round(time.time() - started, 3))


class _NoFrames(Exception):
    pass


def count_frames(frame_dir, naming="mmaction"):
    """Number of frames in a finished frame directory or pack (its ``n_frames`` entry, else by listing)."""
    if str(frame_dir).endswith(PACK_SUFFIX):
        with open_packed(frame_dir) as pack:
            if "n_frames" in pack:
                return int(pack.read("n_frames").split()[0])
            prefix = NAMING[naming].split("{")[0]
            return sum(1 for name in pack.names() if name.startswith(prefix))
    marker = Path(frame_dir) / "n_frames"
    if marker.is_file():
        return int(marker.read_text().split()[0])
    prefix = NAMING[naming].split("{")[0]
    return sum(1 for p in Path(frame_dir).iterdir() if p.name.startswith(prefix))


def probe(video_path):
    """Container facts without decoding: frame count, fps, width, height."""
    capture = cv2.VideoCapture(str(video_path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        return {"container_frames": max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                "fps": float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    finally:
        capture.release()


def process_video(video_id, video_path, out_root, options):
    out_dir = Path(out_root) / video_id
    done = Path(f"{out_dir}{PACK_SUFFIX}") if options.get("pack") else out_dir
    if done.exists():  # renamed into place only when complete
        n_frames = count_frames(done, options["naming"])
        facts = probe(video_path)
        return dict(video_id=video_id, status="skipped", n_frames=n_frames, seconds=0.0, **facts,
                    note=decoded_note(n_frames, facts["container_frames"]))
    return dict(video_id=video_id, **extract_frames(video_path, out_dir, **options))


def remove_own_temporaries(out_root, video_ids, suffix=""):
    """What a killed run left for these videos (never another shard's work in progress in the same directory)."""
    by_parent = {}
    for vid in video_ids:
        path = Path(out_root) / f"{vid}{suffix}"
        by_parent.setdefault(path.parent, set()).add(path.name)
    for parent, names in by_parent.items():
        remove_stale_temporaries(parent, names)


def run_frames(videos, out_root, workers=1, report=None, **options):
    """Extract every ``(video_id, path)``; skip finished videos; return the report records."""
    started = time.time()
    out_root = Path(out_root)
    suffix = PACK_SUFFIX if options.get("pack") else ""
    remove_own_temporaries(out_root, [vid for vid, _ in videos], suffix)
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
               size=args.size, quality=args.quality, naming=args.naming, pack=args.pack)
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
    parser.add_argument("--naming", choices=sorted(NAMINGS), default="mmaction",
                        help="img_00001.jpg (mmaction, mmaction_k400_flow: mmaction2, PaddleVideo) or "
                             "image_00001.jpg (3dresnets: 3D-ResNets, MindSpore-I3D)")
    parser.add_argument("--pack", action="store_true",
                        help="one file per video, OUT/[class/]video.pack, holding the same JPEGs (see prep.packed)")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)
