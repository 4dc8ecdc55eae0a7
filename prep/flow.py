"""Frames → optical flow JPEGs: ``OUT/[class/]video/flow_x_00001.jpg``, ``flow_y_00001.jpg`` …

N−1 flow frames for N RGB frames: flow k is the motion from frame k to frame k+1 (1-based). TV-L1 is OpenCV
contrib's ``DualTVL1OpticalFlow_create()`` on grayscale frames, with its default parameters unless ``--tvl1`` changes
some (recorded in the flow tree); each component is quantized
with bound b into a grayscale JPEG as denseflow does: v > b → 255, v < −b → 0, else round(255·(v + b) / 2b) in
double precision, half to even (:func:`prep.base.optical_flow.quantize`). ``--flow-naming`` names the flow files
(:data:`prep.base.frame_source.NAMINGS`, separate from the rgb frames' ``--naming``); MindSpore-I3D's ``3dresnets``
has N flow frames, the first from frame 1 to itself, and an ``n_frames`` file in each flow folder or pack.

Sources (detected): SRC holds videos at ``--level`` (or re-encoded ones, ``prep reencode``'s
``SRC/[class/]video.mp4``) → frames are decoded in memory (exact decoded count, optional
``--short-side`` / ``--size``, nothing written but the flow); else SRC is a rawframes tree of directories
``SRC/[class/]video/img_*.jpg`` or packs ``SRC/[class/]video.pack``.

Outputs, each complete or absent (a killed run never leaves a flow that looks finished):

- ``OUT/[class/]video/`` (the pipeline's separate tree, ``data/{dataset}/flow``): written aside, renamed into place.
- ``OUT/[class/]video.pack`` with ``--pack`` (:mod:`prep.base.packed`): written aside, renamed into place.
- OUT == SRC (mmaction2's layout, flow beside the ``img_`` files): computed into a hidden ``.flow.*.tmp`` directory
  inside the video directory, moved in, and only then the marker ``.flow_done`` (the flow count) is written. No
  marker means no flow: a rerun removes stray ``flow_*`` files and recomputes. Over packed frames the flow is merged
  into the video's pack (rewritten aside and renamed).

Every finished flow carries ``.flow_done`` (a file in the directory, an entry in a pack) holding the flow count, and
the flow tree its record (``OUT/.tree.meta``, :mod:`prep.base.trees`: names, algorithm, backend, bound, storage,
frame size), written before the first video; the rgb names read come from the frames tree's record.
"""
import contextlib
import itertools
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from prep.base import arguments
from prep.base.atomic import (atomic_directory, atomic_file, remove_own_temporaries, remove_stale_temporaries,
                              temporary_sibling)
from prep.base.errors import UserError
from prep.base.diskspace import write_bytes
from prep.base.media import (VIDEO_EXTENSIONS, DecodeError, VideoReader, decoded_note, output_size,
                             unreadable_reason, unusable_name_record)
from prep.base.frame_source import (COMPONENTS, FLOW_MARKER, FRAMES_MARKER, NAMINGS, FrameError, count_frames,
                                    find_storage, find_video, frame_videos, is_flow_entry, naming_of, open_frames,
                                    storage_path)
from prep.base.optical_flow import (ALGORITHMS, BACKENDS, FLOW_BOUND, cached_estimator, create_estimator, quantize,
                                    resolve_device)
from prep.base.tvl1_parameters import flow_parameters, parse_parameters
from prep.base.packed import PACK_SUFFIX, PackWriter, open_packed
from prep.base.index_file import index_videos
from prep.base.shards import (add_resize_arguments, add_selection_arguments, discover_videos, resize_options,
                              run_pool, select_shard, summarise, torch_threads, write_report)
from prep.base.trees import flow_record, record_tree, tree_conventions

REPORT_COLUMNS = ["video_id", "status", "n_flow", "note", "seconds", "backend"]
# Pairs of one video handed to the torch backend at once (larger than a batch: the estimator splits it); the pairs
# of the videos other threads hand in at the same time join them in one batch (prep.base.optical_flow.BatchEstimator).
TORCH_CHUNK = 64


def gray_frames(kind, source, naming="mmaction", short_side=None, size=None, info=None):
    """Grayscale frames, in order, of stored frames (``frames`` or ``packs``: ``source`` is ``(root, video_id)``, read
    through the frame source) or of a video (``videos``: ``source`` is its path).

    For a video, ``info`` receives ``container_frames`` and ``decoded``."""
    if kind != "videos":
        with open_frames(*source, "rgb", naming, kind) as frames:
            for k in range(1, frames.verify() + 1):  # a gap in the numbering is an error, not a silent skip
                yield frames.read_gray(k)
    else:
        try:  # the one decoder (prep.base.media), as `prep frames`: rotation applied, damaged packets skipped
            video = VideoReader(source)
        except DecodeError:
            raise ValueError(unreadable_reason(source)) from None
        try:
            facts = video.facts()
            info.update(container_frames=facts["container_frames"], damage=video.damage)
            target = output_size(facts["width"], facts["height"], short_side, size)
            for frame in video.arrays("bgr24"):
                if target != (frame.shape[1], frame.shape[0]):
                    frame = cv2.resize(frame, target, interpolation=cv2.INTER_LINEAR)
                info["decoded"] = info.get("decoded", 0) + 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        finally:
            video.close()


def video_note(info):
    """The report's note on a video source: fewer frames than the container claims, damaged packets skipped."""
    notes = (decoded_note(info.get("decoded", 0), info.get("container_frames", 0)),
             info["damage"].note() if "damage" in info else "")
    return "; ".join(n for n in notes if n)


class _TooFew(Exception):
    pass


def write_flow(frames, add, estimate, bound, quality, naming="mmaction", chunk=1):
    """Flow of consecutive frames → ``add(name, jpeg)`` under ``naming``'s names; the number of flow frames (a
    _TooFew below one). A naming with a zero first flow frame (MindSpore-I3D) gets flow 1 from frame 1 to itself.
    ``estimate`` takes up to ``chunk`` pairs at once ((N, H, W) arrays → (N, H, W, 2))."""
    naming = naming_of(naming)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    previous = next(frames, None)
    if naming.zero_first_flow and previous is not None:
        frames = itertools.chain([previous], frames)
    index = 0
    while True:
        following = list(itertools.islice(frames, chunk))
        if not following:
            break
        firsts = [previous] + following[:-1]
        for flow in estimate(np.stack(firsts), np.stack(following)):
            index += 1
            for axis, component in enumerate(COMPONENTS):
                add(naming.name(index, "flow", component),
                    cv2.imencode(".jpg", quantize(flow[..., axis], bound), params)[1])
        previous = following[-1]
    if index == 0 or (naming.zero_first_flow and index == 1):
        raise _TooFew(0 if previous is None else 1)
    return index


@contextlib.contextmanager
def flow_writer(kind, out_path, source=None, naming="mmaction"):
    """Yield ``add(name, data)``; on success the flow stands complete at ``out_path`` with its ``.flow_done``.

    kind: ``frames`` (a folder renamed into place), ``packs`` (a new pack), ``merge`` (the pack ``source`` rewritten
    with the flow added), ``inplace`` (files moved into the existing frame directory ``out_path``, marker last)."""
    if kind == "frames":
        with atomic_directory(out_path) as tmp:
            yield lambda name, data: write_bytes(tmp / name, data)
    elif kind in ("packs", "merge"):
        with atomic_file(out_path, "wb", sync=False) as handle:
            writer = PackWriter(handle)
            if kind == "merge":
                with open_packed(source) as old:
                    for name in old.names():
                        if not is_flow_entry(name, naming):
                            writer.add(name, old.read(name))
            yield writer.add
            writer.finish()
    else:  # inplace
        tmp = temporary_sibling(Path(out_path) / "flow")  # out_path/.flow.XXXX.tmp
        try:
            yield lambda name, data: write_bytes(tmp / name, data)
            marker = (tmp / FLOW_MARKER).read_text()
            for name in sorted(os.listdir(tmp)):
                if name != FLOW_MARKER:
                    os.rename(tmp / name, Path(out_path) / name)
            (tmp / FLOW_MARKER).unlink()
            os.rmdir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with atomic_file(Path(out_path) / FLOW_MARKER, sync=False) as handle:  # last: now the flow is complete
            handle.write(marker)


def compute_flow(source, out_dir, algorithm="tvl1", bound=FLOW_BOUND, quality=95, naming="mmaction",
                 source_kind="frames", output_kind="frames", short_side=None, size=None, source_pack=None,
                 flow_naming=None, backend="opencv", device="auto", parameters=None):
    """Write the flow of one video (``source``: ``(frames_root, video_id)`` of a folder or pack, or a video path) to
    ``out_dir``, which holds no finished flow; return a report record (without video_id). ``source_pack``: the pack
    a ``merge`` output rewrites; ``naming``: the rgb frames read, ``flow_naming`` the flow written (default: as
    ``naming``); ``backend``/``device``: who computes TV-L1 (:mod:`prep.base.optical_flow`), the same numbers;
    ``parameters``: TV-L1's that differ from OpenCV's defaults."""
    flow_naming = flow_naming or naming
    started = time.time()
    estimate = cached_estimator(algorithm, backend, device, parameters)
    info = {}
    frames = gray_frames(source_kind, source, naming, short_side, size, info)
    try:
        with flow_writer(output_kind, out_dir, source_pack, flow_naming) as add:
            count = write_flow(frames, add, estimate, bound, quality, flow_naming,
                               chunk=TORCH_CHUNK if backend == "torch" else 1)
            if naming_of(flow_naming).zero_first_flow and output_kind in ("frames", "packs"):
                add(FRAMES_MARKER, f"{count}\n".encode())  # MindSpore-I3D's get_loader reads n_frames in flow folders
            add(FLOW_MARKER, f"{count}\n".encode())
    except _TooFew as few:
        return {"status": f"quarantined: {few.args[0]} frame(s), flow needs two", "n_flow": 0,
                "note": video_note(info),
                "seconds": round(time.time() - started, 3)}
    finally:
        frames.close()
    note = video_note(info) if source_kind == "videos" else ""
    return {"status": "done", "n_flow": count, "note": note, "seconds": round(time.time() - started, 3)}


def plan(video_id, source, src_root, out_root, pack, naming="mmaction"):
    """(source_kind, output_kind, output_path, finished) for one video; source_kind ``videos``, ``frames`` or
    ``packs`` (None: no frames), output_kind ``frames``, ``packs``, ``merge`` (into the frames' pack) or ``inplace``."""
    in_place = Path(out_root).resolve() == Path(src_root).resolve()
    if source is not None:
        kind = "videos"
    else:
        found = find_storage(src_root, video_id)
        kind = found[0] if found else None
    if in_place and kind in ("frames", "packs"):
        with open_frames(src_root, video_id, "flow", naming, kind) as stored:
            finished = stored.marked_count() is not None
        path = storage_path(src_root, video_id, kind)
        return kind, ("merge" if kind == "packs" else "inplace"), path, finished
    output = "packs" if pack else "frames"
    path = storage_path(out_root, video_id, output)
    return kind, output, path, path.exists()  # renamed into place only when complete


def process_video(video_id, source, src_root, out_root, options):
    unusable = unusable_name_record(video_id, {"n_flow": 0, "note": ""}, PACK_SUFFIX if options.get("pack") else "")
    if unusable is not None:
        return unusable
    options = dict(options)
    naming = options.get("flow_naming") or options.get("naming", "mmaction")  # the flow's names
    source_kind, output_kind, out_path, finished = plan(video_id, source, src_root, out_root,
                                                        options.pop("pack", False), naming)
    if finished:
        flow_root = src_root if output_kind in ("merge", "inplace") else out_root
        storage = "packs" if output_kind in ("merge", "packs") else "frames"
        return dict(video_id=video_id, status="skipped", n_flow=count_frames(flow_root, video_id, "flow", naming,
                                                                            storage), note="", seconds=0.0)
    if source_kind is None:
        return dict(video_id=video_id, status="quarantined: no frames", n_flow=0, note="", seconds=0.0)
    if output_kind == "inplace":  # what a killed run left: temporaries and flow files without a marker
        remove_stale_temporaries(out_path)
        for name in os.listdir(out_path):
            if is_flow_entry(name, naming):
                os.unlink(out_path / name)
    try:
        return dict(video_id=video_id, **compute_flow(source if source_kind == "videos" else (src_root, video_id),
                                                      out_path, source_kind=source_kind, output_kind=output_kind,
                                                      source_pack=out_path if output_kind == "merge" else None,
                                                      **options))
    except (ValueError, FrameError) as error:
        return dict(video_id=video_id, status=f"quarantined: {error}", n_flow=0, note="", seconds=0.0)


def run_flow(video_ids, frames_root, out_root, workers=1, report=None, videos=None, **options):
    """Flow for every video id whose frames are under frames_root (or, with ``videos`` — {video_id: path} — from
    the videos themselves); skip finished ones; return report records."""
    started = time.time()
    if videos and Path(out_root).resolve() == Path(frames_root).resolve():
        raise UserError("flow from videos needs an OUT_DIR of its own (OUT == SRC puts flow beside rawframes)")
    backend = options.get("backend", "opencv")
    if backend == "torch":  # the device once, here: every video thread shares one estimator and its batches
        options["device"] = resolve_device(options.get("device", "auto"))
        torch_threads(workers)
    create_estimator(options.get("algorithm", "tvl1"), backend, options.get("device", "auto"),
                     options.get("parameters"))  # fail early, once
    in_place = Path(out_root).resolve() == Path(frames_root).resolve()
    record_tree(out_root, "flow", tree_section(frames_root, in_place, videos, options))
    if in_place:  # merged packs are rewritten beside the old ones; in-place directories are cleaned per video
        remove_own_temporaries(out_root, video_ids, PACK_SUFFIX)
    else:
        remove_own_temporaries(out_root, video_ids, PACK_SUFFIX if options.get("pack") else "")
    videos = videos or {}
    jobs = [(vid, str(videos[vid]) if videos.get(vid) else None, str(frames_root), str(out_root), options)
            for vid in video_ids]
    records = list(run_pool(process_video, jobs, workers, desc="flow", threads=backend == "torch"))
    for record in records:
        # a skipped video keeps the flow the tree already holds (the tree record names its backend; the twins agree)
        record["backend"] = backend if record["status"] in ("done", "skipped") else ""
    if report:
        write_report(records, report, REPORT_COLUMNS)
    print(summarise(records, "flow", started))
    return records


def tree_section(frames_root, in_place, videos, options):
    """The ``flow`` section of the flow tree's record (:func:`prep.base.trees.flow_record`): its storage (in place:
    the frames'), names, estimator (algorithm and backend), bound, and frame size (the resize options of flow from
    videos, else the source tree's)."""
    source = tree_conventions(frames_root, "rgb")
    if in_place:
        storage = source.get("storage", "frames")
    else:
        storage = "packs" if options.get("pack") else "frames"
    size = (options.get("short_side"), options.get("size"))
    if size == (None, None) and source.get("frame_size"):
        size = (source["frame_size"].get("short_side"), source["frame_size"].get("size"))
    return flow_record(storage, options.get("flow_naming") or options.get("naming", "mmaction"),
                       options.get("algorithm", "tvl1"), options.get("bound", FLOW_BOUND), options.get("quality", 95),
                       *size, backend=options.get("backend", "opencv"),
                       parameters=flow_parameters(options.get("algorithm", "tvl1"), options.get("parameters")))


def video_sources(src_dir, level, index=None):
    """{video_id: video path} when SRC holds videos (at ``level``, or as the index names them), else None."""
    src_dir = Path(src_dir)
    if index is not None:  # the index's files, or the videos storage's re-encoded ones (SRC/video_id.mp4)
        listed = {vid: src_dir / path if (src_dir / path).is_file() else find_video(src_dir, vid)
                  for vid, path in index}
        return listed if any(listed.values()) else None
    if not src_dir.is_dir():
        raise UserError(f"{src_dir}: no such directory")
    found = dict(discover_videos(src_dir, level, VIDEO_EXTENSIONS))
    return found or None


def run(args):
    resize = resize_options(args)
    index = index_videos(args.index) if args.index else None
    videos = video_sources(args.src_dir, args.level, index)
    naming = tree_conventions(args.src_dir, "rgb", naming=args.naming)["naming"]  # the frames tree's names
    if videos is not None:
        video_ids = sorted(videos)
    elif index is not None:
        video_ids = [vid for vid, _ in index]
    else:
        video_ids = frame_videos(args.src_dir, args.level, naming)
    if videos is None and (resize["size"] or resize["short_side"]):
        raise UserError("--short-side / --size apply to flow from videos; rawframes are used at their size")
    video_ids = select_shard(video_ids, args.shard, args.num_shards)
    run_flow(video_ids, args.src_dir, args.out_dir, workers=args.workers, report=args.report, videos=videos,
             algorithm=args.algorithm, bound=args.bound, quality=args.quality, pack=args.pack, naming=naming,
             flow_naming=args.flow_naming, backend=args.backend, device=args.device, parameters=args.tvl1,
             **(resize if videos else {}))
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("flow", help="optical flow (TV-L1) from rawframes into flow_x_/flow_y_ JPEGs",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("src_dir", type=arguments.input_dir,
                        help="rawframes root (SRC/[class/]video/img_00001.jpg or video.pack) or a "
                                        "directory of videos (SRC/[class/]video.mp4): detected")
    parser.add_argument("out_dir", type=arguments.output_dir,
                        help="flow root: OUT/[class/]video/flow_x_00001.jpg; OUT = SRC puts the flow "
                                        "beside the frames (mmaction2 layout)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="tvl1")
    parser.add_argument("--backend", choices=BACKENDS, default="opencv",
                        help="who computes TV-L1: opencv (cv2.optflow, one frame pair at a time per worker) or torch "
                             "(prep.base.tvl1_torch: OpenCV's numbers, batches of pairs on --device; videos decoded "
                             "by --workers threads); the flow tree records it")
    parser.add_argument("--device", default="auto", help="torch backend: auto (a GPU when this process sees one, "
                        "else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--tvl1", type=arguments.checked(parse_parameters), default={}, metavar="KEY=VALUE[,KEY=VALUE]",
                        help="TV-L1 parameters that differ from OpenCV's defaults, by OpenCV's names (tau, lambda, "
                             "theta, scales, warps, epsilon, inner_iterations, outer_iterations, scale_step, "
                             "median_filtering), e.g. epsilon=0.05; the flow tree records them")
    parser.add_argument("--bound", type=arguments.number(above=0), default=FLOW_BOUND,
                        help=f"quantization bound in pixels (default {FLOW_BOUND:g})")
    parser.add_argument("--quality", type=arguments.count(1, 100), default=95, help="JPEG quality (default 95)")
    parser.add_argument("--naming", choices=sorted(NAMINGS), default=None,
                        help="names of the rgb frames read (prep.base.frame_source.NAMINGS): the frames tree's record "
                             "says them; for a tree made by other tools, default mmaction")
    parser.add_argument("--flow-naming", choices=sorted(NAMINGS), default=None,
                        help="flow files written: mmaction flow_x_/flow_y_00001.jpg (N-1), mmaction_k400_flow "
                             "x_/y_00001.jpg (N-1), 3dresnets image_00001x/y.jpg (N, the first zero, n_frames file; "
                             "MindSpore-I3D); default: as --naming")
    parser.add_argument("--pack", action="store_true", help="one file per video, OUT/[class/]video.pack "
                        "(prep.base.packed); in place over packed frames the flow always goes into the frames' pack")
    add_resize_arguments(parser, when="flow from videos: ")
    add_selection_arguments(parser)
    parser.set_defaults(func=run)
