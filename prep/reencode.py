"""Videos → re-encoded videos for training (the ``videos`` storage): ``OUT/[class/]video.mp4``, one per source video.

Each source is decoded once by the decoder every stage shares (:class:`prep.base.media.VideoReader`: the display
matrix applied, damaged packets skipped and noted, as for ``prep frames``) and every decoded frame is piped, in
order, to ffmpeg's libx264: constant frame rate (the source's average rate), a keyframe every
``KEYFRAME_INTERVAL`` frames and no B-frames (reading frame k decodes at most that many frames), yuv420p at even sizes,
the short side scaled to ``--short-side`` (Kinetics-400: 256) or the frame to ``--size``. So frame k of the re-encoded
video is frame k of the source, and the index lists, sampling and ``img_k`` of the frames storage all agree. After encoding, the new file is
decoded and its frame count — and the count its container states, which the frame source reads as the video's length
— must equal the source's decoded count; else the video is quarantined with the reason.

Deterministic: one encoder thread, ``-bitexact``, no metadata (``-map_metadata -1``), so a rerun after a kill -9 gives
byte-identical files. Each file is written under a hidden temporary name and renamed into place when complete and
checked; a rerun skips finished videos and removes its own videos' temporaries. ffmpeg runs without a shell (names
contain ``& ( ) ! ' ;``).
"""
import os
import subprocess
import tempfile
import time
from pathlib import Path

from prep.base.atomic import remove_own_temporaries
from prep.base.errors import UserError
from prep.base.frame_source import KEYFRAME_INTERVAL, FrameError, VideoDecoder
from prep.base.index_file import index_videos
from prep.base.media import DecodeError, VideoReader, decoded_note, ffmpeg_executable, probe
from prep.base.shards import add_selection_arguments, discover_videos, parse_size, run_stage, select_shard

SUFFIX = ".mp4"
REPORT_COLUMNS = ["video_id", "status", "n_frames", "container_frames", "fps", "width", "height", "out_width",
                  "out_height", "bytes", "note", "seconds"]
DEFAULT_CRF = 18
VIDEO_EXTENSIONS = {"avi", "mp4", "mkv", "webm", "mov"}
UMASK = os.umask(0)
os.umask(UMASK)


def even_size(width, height, short_side=None, size=None):
    """(width, height) of the re-encoded video: ``size`` (width, height), or the short side scaled to ``short_side``,
    or as it is — made even (yuv420p halves the chroma planes)."""
    if size:
        width, height = size
    elif short_side:
        scale = short_side / min(width, height)
        width, height = width * scale, height * scale
    return max(2, 2 * int(width / 2 + 0.5)), max(2, 2 * int(height / 2 + 0.5))  # half up: 33 → 34


def encoder_command(size, fps, out_path, crf=DEFAULT_CRF):
    """ffmpeg reading raw yuv420p frames on stdin, writing the H.264 mp4 ``out_path`` deterministically."""
    width, height = size
    return [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0",
            "-map", "0:v", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-g", str(KEYFRAME_INTERVAL), "-keyint_min", str(KEYFRAME_INTERVAL), "-sc_threshold", "0", "-bf", "0",
            "-threads", "1", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4", str(out_path)]


class _Quarantine(Exception):
    pass


def encode(source, tmp_path, short_side, size, crf):
    """Decode ``source`` (a media.VideoReader) into ffmpeg; (decoded frames, source facts, output size)."""
    facts = source.facts()
    rate = facts.pop("rate") or 25  # the exact rational (30000/1001), not a rounded float
    process, count = None, 0
    out_size = even_size(facts["width"], facts["height"], short_side, size)  # as displayed (rotation applied)
    try:
        for planes in source.arrays("yuv420p", size=out_size):
            if process is None:
                process = subprocess.Popen(encoder_command(out_size, str(rate), tmp_path, crf), stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                process.stdin.write(planes.tobytes())
            except BrokenPipeError:
                break
            count += 1
    finally:
        if process is not None:
            process.stdin.close()
            error = process.stderr.read().decode(errors="replace").strip()
            process.stderr.close()
            if process.wait() != 0:
                raise _Quarantine(f"ffmpeg failed: {error[-300:]}")
    if count == 0:
        raise _Quarantine("no decodable video frames")
    return count, dict(facts, fps=float(rate)), out_size


def reencode_video(video_path, out_path, short_side=None, size=None, crf=DEFAULT_CRF):
    """Re-encode ``video_path`` to ``out_path`` (which must not exist); a report record (without video_id)."""
    started = time.time()
    record = {"status": "done", "n_frames": 0, "container_frames": 0, "fps": 0.0, "width": 0, "height": 0,
              "out_width": 0, "out_height": 0, "bytes": 0, "note": ""}
    video_path, out_path = Path(video_path), Path(out_path)
    if not video_path.is_file():
        return dict(record, status="quarantined: file not found", seconds=0.0)
    if video_path.stat().st_size == 0:
        return dict(record, status="quarantined: empty file", seconds=0.0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~UMASK)  # as an ordinary file, not mkstemp's 0600
    try:
        source = VideoReader(video_path)  # the one decoder (prep.base.media), as `prep frames`
    except DecodeError as error:
        Path(tmp).unlink(missing_ok=True)
        return dict(record, status=f"quarantined: {error}", seconds=round(time.time() - started, 3))
    try:
        count, facts, out_size = encode(source, tmp, short_side, size, crf)
        record.update(facts, n_frames=count, out_width=out_size[0], out_height=out_size[1])
        written = VideoDecoder(tmp)
        try:
            decoded = sum(1 for _ in written.frames())
            stated = written.container_frames()
        finally:
            written.close()
        if decoded != count or stated != count:
            raise _Quarantine(f"re-encoded video decodes to {decoded} frames (container: {stated}), the source to "
                              f"{count}")
        os.replace(tmp, out_path)
    except (_Quarantine, FrameError) as reason:
        Path(tmp).unlink(missing_ok=True)
        return dict(record, status=f"quarantined: {reason}", seconds=round(time.time() - started, 3))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        source.close()
    record["note"] = "; ".join(n for n in (decoded_note(count, record["container_frames"]), source.damage.note()) if n)
    return dict(record, bytes=out_path.stat().st_size, seconds=round(time.time() - started, 3))


def process_video(video_id, video_path, out_root, options):
    out_path = Path(f"{Path(out_root) / video_id}{SUFFIX}")
    if out_path.exists():  # renamed into place only when complete and checked
        done = VideoDecoder(out_path)
        try:
            facts = probe(video_path)
            n_frames, out = done.container_frames(), done.info()
        except FrameError as error:
            return dict(video_id=video_id, status=f"quarantined: {error}", seconds=0.0)
        finally:
            done.close()
        return dict(video_id=video_id, status="skipped", n_frames=n_frames, **facts, out_width=out["width"],
                    out_height=out["height"], bytes=out_path.stat().st_size, seconds=0.0)
    return dict(video_id=video_id, **reencode_video(video_path, out_path, **options))


def run_reencode(videos, out_root, workers=1, report=None, **options):
    """Re-encode every ``(video_id, path)``; skip finished videos; return the report records."""
    remove_own_temporaries(out_root, [vid for vid, _ in videos], SUFFIX)
    jobs = [(vid, str(path), str(out_root), options) for vid, path in videos]
    return run_stage(process_video, jobs, workers, "reencode", report, REPORT_COLUMNS)


def run(args):
    if args.index:
        videos = [(vid, Path(args.video_dir) / path) for vid, path in index_videos(args.index)]
    else:
        videos = discover_videos(args.video_dir, args.level, VIDEO_EXTENSIONS)
    if args.size and args.short_side:
        raise UserError("--size and --short-side exclude each other")
    if Path(args.out_dir).resolve() == Path(args.video_dir).resolve():
        raise UserError(f"{args.out_dir}: the re-encoded videos need a directory of their own (not the sources')")
    videos = select_shard(videos, args.shard, args.num_shards)
    run_reencode(videos, args.out_dir, workers=args.workers, report=args.report, short_side=args.short_side,
                 size=args.size, crf=args.crf)
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("reencode", help="re-encode videos for training from video (the videos storage)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("video_dir", help="directory of source videos (SRC/class/video.ext with --level 2)")
    parser.add_argument("out_dir", help="root of the re-encoded videos: OUT/[class/]video.mp4")
    parser.add_argument("--short-side", type=int, help="scale so the short side has this length (Kinetics: 256)")
    parser.add_argument("--size", type=parse_size, help="scale to WIDTHxHEIGHT, e.g. 340x256 (made even)")
    parser.add_argument("--crf", type=int, default=DEFAULT_CRF, help=f"x264 quality (default {DEFAULT_CRF})")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)

