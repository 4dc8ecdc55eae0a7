"""Video → JPEG frames: ``OUT/[class/]video/img_00001.jpg …``, one per decoded frame (1-based).

Frames are counted as the decoder returns them — never through the ffmpeg CLI, whose default vsync duplicates or
drops frames to fit a constant rate. A video that decodes to fewer frames than its container claims keeps what
decoded and says so in the report's ``note``. Each video's frames go to a temporary directory renamed into place
when complete, with an ``n_frames`` file (the largest image index, as 3D-ResNets / MindSpore-I3D read it);
``--pack`` writes the same JPEG bytes into one file per video instead, ``OUT/[class/]video.pack`` (:mod:`prep.base.packed`).
Decoding runs on one thread per worker (``--workers N`` uses N cores); bad videos (empty, corrupt, truncated before
the first frame, audio only) are quarantined with the reason in the report's ``status``.
"""
import contextlib
import time
from pathlib import Path

import cv2

from prep.base import names
from prep.base.atomic import atomic_directory, atomic_file, remove_own_temporaries
from prep.base.diskspace import write_bytes
from prep.base.frame_source import FRAMES_MARKER, NAMINGS, count_frames, naming_of
from prep.base.packed import PACK_SUFFIX, PackWriter
from prep.base.media import (VIDEO_EXTENSIONS, DecodeError, VideoReader, decoded_note, output_size, probe,
                             unreadable_reason, unusable_name_record)
from prep.base.index_file import index_videos
from prep.base.shards import (add_resize_arguments, add_selection_arguments, discover_videos, resize_options, run_stage,
                              select_shard)

REPORT_COLUMNS = ["video_id", "status", "n_frames", "container_frames", "fps", "width", "height", "note", "seconds"]


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
    frame_name = naming_of(naming).name
    record = {"status": "done", "n_frames": 0, "container_frames": 0, "fps": 0.0, "width": 0, "height": 0,
              "note": ""}
    try:  # the one decoder (prep.base.media): rotation applied, damaged packets skipped and noted
        video = VideoReader(video_path) if Path(video_path).is_file() and Path(video_path).stat().st_size else None
    except DecodeError:
        video = None
    if video is None:
        return dict(record, status=f"quarantined: {unreadable_reason(video_path)}", seconds=0.0)
    out_path = Path(f"{out_dir}{PACK_SUFFIX}") if pack else Path(out_dir)
    count = 0
    try:
        facts = video.facts()
        record.update(container_frames=facts["container_frames"], fps=facts["fps"], width=facts["width"],
                      height=facts["height"])
        target = output_size(facts["width"], facts["height"], short_side, size)
        scale = target != (facts["width"], facts["height"])
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        with output_writer(out_path, pack) as add:
            encode, resize = cv2.imencode, cv2.resize
            for frame in video.arrays("bgr24"):
                if scale:
                    frame = resize(frame, target, interpolation=cv2.INTER_LINEAR)
                count += 1
                add(frame_name(count), encode(".jpg", frame, params)[1])
            if count == 0:
                raise _NoFrames()
            add(FRAMES_MARKER, f"{count}\n".encode())
    except _NoFrames:
        return dict(record, status="quarantined: no decodable video frames", seconds=round(time.time() - started, 3))
    finally:
        video.close()
    record["note"] = "; ".join(n for n in (decoded_note(count, record["container_frames"]), video.damage.note()) if n)
    return dict(record, n_frames=count, seconds=round(time.time() - started, 3))


class _NoFrames(Exception):
    pass


def process_video(video_id, video_path, out_root, options):
    unusable = unusable_name_record(video_id, {"n_frames": 0, "note": f"file {names.printable(str(video_path))}"})
    if unusable is not None:
        return unusable
    out_dir = Path(out_root) / video_id
    storage = "pack" if options.get("pack") else "folder"
    done = Path(f"{out_dir}{PACK_SUFFIX}") if options.get("pack") else out_dir
    if done.exists():  # renamed into place only when complete
        n_frames = count_frames(out_root, video_id, "rgb", options["naming"], storage)
        facts = probe(video_path)
        return dict(video_id=video_id, status="skipped", n_frames=n_frames, seconds=0.0, **facts,
                    note=decoded_note(n_frames, facts["container_frames"]))
    return dict(video_id=video_id, **extract_frames(video_path, out_dir, **options))


def run_frames(videos, out_root, workers=1, report=None, **options):
    """Extract every ``(video_id, path)``; skip finished videos; return the report records."""
    out_root = Path(out_root)
    suffix = PACK_SUFFIX if options.get("pack") else ""
    remove_own_temporaries(out_root, [vid for vid, _ in videos], suffix)
    jobs = [(vid, str(path), str(out_root), options) for vid, path in videos]
    return run_stage(process_video, jobs, workers, "frames", report, REPORT_COLUMNS)


def run(args):
    resize = resize_options(args)
    if args.index:
        videos = index_videos(args.index)
        videos = [(vid, Path(args.video_dir) / path) for vid, path in videos]
    else:
        videos = discover_videos(args.video_dir, args.level, {e.strip().lower() for e in args.ext.split(",")})
    videos = select_shard(videos, args.shard, args.num_shards)
    run_frames(videos, args.out_dir, workers=args.workers, report=args.report, quality=args.quality,
               naming=args.naming, pack=args.pack, **resize)
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("frames", help="decode videos into JPEG frames (img_00001.jpg …)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("video_dir", help="directory of videos (SRC/class/video.ext with --level 2)")
    parser.add_argument("out_dir", help="rawframes root: OUT/[class/]video/img_00001.jpg")
    parser.add_argument("--ext", default=",".join(VIDEO_EXTENSIONS), help="video extensions to take (comma list)")
    add_resize_arguments(parser)
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--naming", choices=sorted(NAMINGS), default="mmaction",
                        help="frame names (prep.base.frame_source.NAMINGS): img_00001.jpg (mmaction2, PaddleVideo) or "
                             "image_00001.jpg (3dresnets: 3D-ResNets, MindSpore-I3D)")
    parser.add_argument("--pack", action="store_true",
                        help="one file per video, OUT/[class/]video.pack, holding the same JPEGs (see prep.base.packed)")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)
