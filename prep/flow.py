"""Frames → optical flow JPEGs: ``OUT/[class/]video/flow_x_00001.jpg``, ``flow_y_00001.jpg`` …

N−1 flow frames for N RGB frames: flow k is the motion from frame k to frame k+1 (1-based). TV-L1 is OpenCV
contrib's ``DualTVL1OpticalFlow_create()`` with default parameters on grayscale frames; each component is quantized
with bound b into a grayscale JPEG as denseflow does: v > b → 255, v < −b → 0, else round(255·(v + b) / 2b) in
double precision, half to even (:func:`quantize`).

Sources (detected): SRC holds videos at ``--level`` → frames are decoded in memory (exact decoded count, optional
``--short-side`` / ``--size``, nothing written but the flow); else SRC is a rawframes tree of directories
``SRC/[class/]video/img_*.jpg`` or packs ``SRC/[class/]video.pack``.

Outputs, each complete or absent (a killed run never leaves a flow that looks finished):

- ``OUT/[class/]video/`` (the pipeline's separate tree, ``data/{dataset}/flow``): written aside, renamed into place.
- ``OUT/[class/]video.pack`` with ``--pack`` (:mod:`prep.packed`): written aside, renamed into place.
- OUT == SRC (mmaction2's layout, flow beside the ``img_`` files): computed into a hidden ``.flow.*.tmp`` directory
  inside the video directory, moved in, and only then the marker ``.flow_done`` (the flow count) is written. No
  marker means no flow: a rerun removes stray ``flow_*`` files and recomputes. Over packed frames the flow is merged
  into the video's pack (rewritten aside and renamed).

Every finished flow carries ``.flow_done`` (a file in the directory, an entry in a pack) holding the flow count.
"""
import contextlib
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from prep import UserError
from prep.atomic import atomic_directory, atomic_file, remove_stale_temporaries, temporary_sibling
from prep.diskspace import write_bytes
from prep.frames import (NAMING, decoded_note, open_video, output_size, parse_size, remove_own_temporaries,
                         unreadable_reason)
from prep.base.frame_source import COMPONENTS, FLOW_MARKER, FRAMES_MARKER, NAMINGS, is_flow_entry, naming_of
from prep.base.packed import PACK_SUFFIX, PackWriter, open_packed
from prep.shards import (add_selection_arguments, discover_videos, index_videos, run_pool, select_shard, summarise,
                         write_report)

DONE = FLOW_MARKER
VIDEO_EXTENSIONS = {"avi", "mp4", "mkv", "webm", "mov"}
_ESTIMATORS = {}

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
    """Flow component (pixels) → uint8 exactly as denseflow: v > b → 255, v < −b → 0, else
    cvRound(255·(v − (−b)) / (b − (−b))) evaluated in double precision, cvRound rounding half to even
    (open-mmlab/denseflow src/common.cpp convertFlowToImage, the CAST macro; its float flow meets double bounds)."""
    value = np.asarray(component, dtype=np.float64)
    low, high = -float(bound), float(bound)
    scaled = np.rint(255.0 * (np.clip(value, low, high) - low) / (high - low))  # rint: half to even, as cvRound
    return scaled.astype(np.uint8)


def cached_estimator(algorithm):
    """One estimator per process and algorithm, reused across videos (TV-L1 keeps no state between calls)."""
    if algorithm not in _ESTIMATORS:
        _ESTIMATORS[algorithm] = create_estimator(algorithm)
    return _ESTIMATORS[algorithm]


def read_gray(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: unreadable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def decode_gray(data, name):
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{name}: unreadable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def numbered(names, naming, where):
    """The RGB frame names in index order; a gap in the numbering is an error, not a silent skip."""
    pattern = NAMING[naming]
    names = sorted(n for n in names if naming_of(naming).index_of(n) is not None)  # not image_00001x.jpg
    for expected, name in enumerate(names, start=1):
        if name != pattern.format(expected):
            raise ValueError(f"{where}: frames are not numbered 1..N ({name} where {pattern.format(expected)} "
                             "was expected)")
    return names


def frame_paths(frame_dir, naming="mmaction"):
    """The RGB frames of a directory in index order (see :func:`numbered`)."""
    return [Path(frame_dir) / n for n in numbered(os.listdir(frame_dir), naming, frame_dir)]


def gray_frames(kind, source, naming="mmaction", short_side=None, size=None, info=None):
    """Grayscale frames, in order, of a frame directory (``dir``), a pack (``pack``) or a video (``video``).

    For a video, ``info`` receives ``container_frames`` and ``decoded``."""
    if kind == "dir":
        for path in frame_paths(source, naming):
            yield read_gray(path)
    elif kind == "pack":
        with open_packed(source) as pack:
            for name in numbered(pack.names(), naming, source):
                yield decode_gray(pack.read(name), f"{source}:{name}")
    else:
        capture = open_video(source)
        if capture is None:
            raise ValueError(unreadable_reason(source))
        try:
            info["container_frames"] = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            ok, frame = capture.read()
            target = output_size(frame.shape[1], frame.shape[0], short_side, size) if ok else None
            while ok:
                if target != (frame.shape[1], frame.shape[0]):
                    frame = cv2.resize(frame, target, interpolation=cv2.INTER_LINEAR)
                info["decoded"] = info.get("decoded", 0) + 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                ok, frame = capture.read()
        finally:
            capture.release()


class _TooFew(Exception):
    pass


def write_flow(frames, add, estimate, bound, quality, flow_naming="mmaction"):
    """Flow of consecutive frames → ``add(name, jpeg)`` under ``flow_naming``; the number of flow frames (a _TooFew
    below one). mmaction namings: flow k = frame k → k+1 (N−1). 3dresnets (MindSpore-I3D's converter,
    convert_rgb_to_flow.py cal_for_frames): flow 1 = frame 1 → frame 1, flow k = frame k−1 → k (N)."""
    naming = naming_of(flow_naming)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    previous = next(frames, None)
    if previous is None:
        raise _TooFew(0)
    index = 0

    def add_flow(before, after):
        nonlocal index
        flow = estimate(before, after)
        index += 1
        for axis, component in enumerate(COMPONENTS):
            add(naming.name(index, "flow", component),
                cv2.imencode(".jpg", quantize(flow[..., axis], bound), params)[1])

    if naming.zero_first_flow:
        add_flow(previous, previous)
    for current in frames:
        add_flow(previous, current)
        previous = current
    if index == 0 or (naming.zero_first_flow and index == 1):
        raise _TooFew(1)
    return index


@contextlib.contextmanager
def flow_writer(kind, out_path, source=None, flow_naming="mmaction"):
    """Yield ``add(name, data)``; on success the flow stands complete at ``out_path`` with its ``.flow_done``.

    kind: ``dir`` (renamed into place), ``pack`` (a new pack), ``merge`` (the pack ``source`` rewritten with the flow
    added), ``inplace`` (files moved into the existing frame directory ``out_path``, marker last)."""
    if kind == "dir":
        with atomic_directory(out_path) as tmp:
            yield lambda name, data: write_bytes(tmp / name, data)
    elif kind in ("pack", "merge"):
        with atomic_file(out_path, "wb", sync=False) as handle:
            writer = PackWriter(handle)
            if kind == "merge":
                with open_packed(source) as old:
                    for name in old.names():
                        if not is_flow_entry(name, flow_naming):
                            writer.add(name, old.read(name))
            yield writer.add
            writer.finish()
    else:  # inplace
        tmp = temporary_sibling(Path(out_path) / "flow")  # out_path/.flow.XXXX.tmp
        try:
            yield lambda name, data: write_bytes(tmp / name, data)
            marker = (tmp / DONE).read_text()
            for name in sorted(os.listdir(tmp)):
                if name != DONE:
                    os.rename(tmp / name, Path(out_path) / name)
            (tmp / DONE).unlink()
            os.rmdir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with atomic_file(Path(out_path) / DONE, sync=False) as handle:  # last: now the flow is complete
            handle.write(marker)


def compute_flow(frame_dir, out_dir, algorithm="tvl1", bound=20.0, quality=95, naming="mmaction", source_kind="dir",
                 output_kind="dir", short_side=None, size=None, flow_naming="mmaction"):
    """Write the flow of one video's frames (``frame_dir``: a directory, pack or video) to ``out_dir``, which holds
    no finished flow; return a report record (without video_id)."""
    started = time.time()
    estimate = cached_estimator(algorithm)
    info = {}
    frames = gray_frames(source_kind, frame_dir, naming, short_side, size, info)
    try:
        with flow_writer(output_kind, out_dir, frame_dir, flow_naming) as add:
            count = write_flow(frames, add, estimate, bound, quality, flow_naming)
            if naming_of(flow_naming).zero_first_flow and output_kind in ("dir", "pack"):
                add(FRAMES_MARKER, f"{count}\n".encode())  # MindSpore-I3D's get_loader reads n_frames in flow folders
            add(DONE, f"{count}\n".encode())
    except _TooFew as few:
        return {"status": f"quarantined: {few.args[0]} frame(s), flow needs two", "n_flow": 0,
                "note": decoded_note(info.get("decoded", 0), info.get("container_frames", 0)),
                "seconds": round(time.time() - started, 3)}
    finally:
        frames.close()
    note = decoded_note(info["decoded"], info["container_frames"]) if source_kind == "video" else ""
    return {"status": "done", "n_flow": count, "note": note, "seconds": round(time.time() - started, 3)}


def count_flow(flow_dir):
    """Flow count of a finished flow directory or pack: its ``.flow_done`` marker, else by listing."""
    flow_dir = str(flow_dir)
    if flow_dir.endswith(PACK_SUFFIX):
        with open_packed(flow_dir) as pack:
            if DONE in pack:
                return int(pack.read(DONE).split()[0])
            return sum(1 for name in pack.names() if name.startswith("flow_x_"))
    marker = Path(flow_dir) / DONE
    if marker.is_file():
        return int(marker.read_text().split()[0])
    return sum(1 for p in Path(flow_dir).iterdir() if p.name.startswith("flow_x_"))


def pack_has_flow(path):
    try:
        with open_packed(path) as pack:
            return DONE in pack
    except FileNotFoundError:
        return False


def plan(video_id, source, src_root, out_root, pack):
    """(source_kind, source_path, output_kind, output_path, finished) for one video."""
    in_place = Path(out_root).resolve() == Path(src_root).resolve()
    if source is not None:  # a video file
        kind, path = "video", Path(source)
    else:
        packed = Path(f"{Path(src_root) / video_id}{PACK_SUFFIX}")
        kind, path = ("pack", packed) if packed.is_file() else ("dir", Path(src_root) / video_id)
    if in_place and kind == "pack":
        return kind, path, "merge", path, pack_has_flow(path)
    if in_place:
        return kind, path, "inplace", path, (path / DONE).is_file()
    if pack:
        out = Path(f"{Path(out_root) / video_id}{PACK_SUFFIX}")
        return kind, path, "pack", out, out.is_file()
    out = Path(out_root) / video_id
    return kind, path, "dir", out, out.is_dir()


def process_video(video_id, source, src_root, out_root, options):
    options = dict(options)
    source_kind, source_path, output_kind, out_path, finished = plan(video_id, source, src_root, out_root,
                                                                      options.pop("pack", False))
    if finished:
        return dict(video_id=video_id, status="skipped", n_flow=count_flow(out_path), note="", seconds=0.0)
    if source_kind == "dir" and not source_path.is_dir():
        return dict(video_id=video_id, status="quarantined: no frames", n_flow=0, note="", seconds=0.0)
    if output_kind == "inplace":  # what a killed run left: temporaries and flow files without a marker
        remove_stale_temporaries(out_path)
        for name in os.listdir(out_path):
            if name != DONE and is_flow_entry(name, options.get("flow_naming", "mmaction")):
                os.unlink(out_path / name)
    try:
        return dict(video_id=video_id, **compute_flow(source_path, out_path, source_kind=source_kind,
                                                      output_kind=output_kind, **options))
    except ValueError as error:
        return dict(video_id=video_id, status=f"quarantined: {error}", n_flow=0, note="", seconds=0.0)


def run_flow(video_ids, frames_root, out_root, workers=1, report=None, videos=None, **options):
    """Flow for every video id whose frames are under frames_root (or, with ``videos`` — {video_id: path} — from
    the videos themselves); skip finished ones; return report records."""
    started = time.time()
    if videos and Path(out_root).resolve() == Path(frames_root).resolve():
        raise UserError("flow from videos needs an OUT_DIR of its own (OUT == SRC puts flow beside rawframes)")
    create_estimator(options.get("algorithm", "tvl1"))  # fail early, once, on a missing backend
    in_place = Path(out_root).resolve() == Path(frames_root).resolve()
    if in_place:  # merged packs are rewritten beside the old ones; in-place directories are cleaned per video
        remove_own_temporaries(out_root, video_ids, PACK_SUFFIX)
    else:
        remove_own_temporaries(out_root, video_ids, PACK_SUFFIX if options.get("pack") else "")
    videos = videos or {}
    jobs = [(vid, str(videos[vid]) if vid in videos else None, str(frames_root), str(out_root), options)
            for vid in video_ids]
    records = list(run_pool(process_video, jobs, workers, desc="flow"))
    if report:
        write_report(records, report, REPORT_COLUMNS)
    print(summarise(records, "flow", started))
    return records


def frame_directories(frames_root, level):
    """Video ids of a rawframes tree: directories and packs (``video.pack``) at ``level``."""
    frames_root = Path(frames_root)
    if not frames_root.is_dir():
        raise UserError(f"{frames_root}: no such directory")
    pattern = "*/*" if level == 2 else "*"
    ids = set()
    for p in frames_root.glob(pattern):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            ids.add(p.relative_to(frames_root).as_posix())
        elif p.name.endswith(PACK_SUFFIX) and p.is_file():
            ids.add(p.relative_to(frames_root).as_posix()[:-len(PACK_SUFFIX)])
    return sorted(ids)


def video_sources(src_dir, level, index=None):
    """{video_id: video path} when SRC holds videos (at ``level``, or as the index names them), else None."""
    src_dir = Path(src_dir)
    if index is not None:
        listed = {vid: src_dir / path for vid, path in index}
        sample = list(listed.values())[:20]
        return listed if any(p.is_file() for p in sample) else None
    if not src_dir.is_dir():
        raise UserError(f"{src_dir}: no such directory")
    found = dict(discover_videos(src_dir, level, VIDEO_EXTENSIONS))
    return found or None


def run(args):
    if args.new_width or args.new_height:
        if not (args.new_width and args.new_height):
            raise UserError("--new-width and --new-height go together")
        args.size = (args.new_width, args.new_height)
    index = index_videos(args.index) if args.index else None
    videos = video_sources(args.src_dir, args.level, index)
    if videos is not None:
        video_ids = sorted(videos)
    elif index is not None:
        video_ids = [vid for vid, _ in index]
    else:
        video_ids = frame_directories(args.src_dir, args.level)
    if videos is None and (args.size or args.short_side):
        raise UserError("--short-side / --size apply to flow from videos; rawframes are used at their size")
    video_ids = select_shard(video_ids, args.shard, args.num_shards)
    run_flow(video_ids, args.src_dir, args.out_dir, workers=args.workers, report=args.report, videos=videos,
             algorithm=args.algorithm, bound=args.bound, quality=args.quality, pack=args.pack,
             naming=args.naming, flow_naming=args.flow_naming,
             **({"short_side": args.short_side, "size": args.size} if videos else {}))
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("flow", help="optical flow (TV-L1) from rawframes into flow_x_/flow_y_ JPEGs",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("src_dir", help="rawframes root (SRC/[class/]video/img_00001.jpg or video.pack) or a "
                                        "directory of videos (SRC/[class/]video.mp4): detected")
    parser.add_argument("out_dir", help="flow root: OUT/[class/]video/flow_x_00001.jpg; OUT = SRC puts the flow "
                                        "beside the frames (mmaction2 layout)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="tvl1")
    parser.add_argument("--bound", type=float, default=20.0, help="quantization bound in pixels (default 20)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--naming", choices=sorted(NAMINGS), default="mmaction",
                        help="names of the rgb frames read (as `prep frames --naming`)")
    parser.add_argument("--flow-naming", choices=sorted(NAMINGS), default="mmaction",
                        help="flow files written: mmaction flow_x_/flow_y_00001.jpg (N-1), mmaction_k400_flow "
                             "x_/y_00001.jpg (N-1), 3dresnets image_00001x/y.jpg (N, the first zero, n_frames file; "
                             "MindSpore-I3D)")
    parser.add_argument("--pack", action="store_true", help="one file per video, OUT/[class/]video.pack "
                        "(prep.packed); in place over packed frames the flow always goes into the frames' pack")
    parser.add_argument("--short-side", "--new-short", type=int, help="flow from videos: resize the short side first")
    parser.add_argument("--size", type=parse_size, help="flow from videos: resize to WIDTHxHEIGHT first")
    parser.add_argument("--new-width", type=int, help="mmaction2 alias: width of --size")
    parser.add_argument("--new-height", type=int, help="mmaction2 alias: height of --size")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)
