"""Shared machinery of the per-video stages: shard selection, a worker pool with pinned threads, reports.

A Snakemake job handles one shard (every ``num_shards``-th video of a sorted list), never one video, so a
Kinetics-sized graph has hundreds of jobs. Each video's output is written aside and renamed into place when
complete, so a rerun skips what is done and redoes what was cut short.
"""
import argparse
import csv
import concurrent.futures
import glob
import multiprocessing
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from prep.base.atomic import atomic_file
from prep.base.errors import UserError

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def select_shard(items, shard, num_shards):
    """Round-robin share ``shard`` (0-based) of ``items`` sorted by key, so shards get mixed lengths."""
    if not 0 <= shard < num_shards:
        raise UserError(f"--shard {shard} is outside 0..{num_shards - 1}")
    return sorted(items)[shard::num_shards]


def pin_threads(threads=1):
    """One worker = one core: stop OpenCV and BLAS from spawning threads of their own in every worker."""
    import cv2
    cv2.setNumThreads(threads)
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:  # already imported: the environment variables come too late for it
        sys.modules["torch"].set_num_threads(threads)


def torch_threads(threads):
    """A job's threads for torch's own CPU work (the torch flow backend runs in this process, not in workers)."""
    import torch
    torch.set_num_threads(max(1, threads))


def run_pool(function, jobs, workers, desc, threads=False):
    """Apply ``function`` to every job (a tuple of arguments) in ``workers`` processes (or, with ``threads``, threads
    of this process sharing its state, e.g. one GPU); yield results in job order."""
    workers = max(1, min(workers, len(jobs) or 1))
    bar = tqdm(total=len(jobs), desc=desc, unit="video", mininterval=1.0, disable=None)
    try:
        if threads:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                for result in pool.map(_star, [(function, job) for job in jobs]):
                    yield result
                    bar.update()
        elif workers == 1:
            pin_threads(1)
            for job in jobs:
                yield function(*job)
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")  # no forked OpenCV/torch state
            with context.Pool(workers, initializer=pin_threads) as pool:
                for result in pool.imap(_star, [(function, job) for job in jobs]):
                    yield result
                    bar.update()
    finally:
        bar.close()


def _star(function_and_job):
    function, job = function_and_job
    return function(*job)


def run_stage(function, jobs, workers, verb, report=None, columns=()):
    """A per-video stage over its jobs: the pool, the shard's report (if asked) and the closing line; the records."""
    started = time.time()
    records = list(run_pool(function, jobs, workers, desc=verb))
    if report:
        write_report(records, report, columns)
    print(summarise(records, verb, started))
    return records


def summarise(records, verb, started):
    """One line a person reads at the end of a stage."""
    counts = {}
    for r in records:
        key = r["status"].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    frames = sum(int(r.get("n_frames") or r.get("n_flow") or 0) for r in records)
    return (f"{verb}: {len(records)} videos — {counts.get('done', 0)} done, {counts.get('skipped', 0)} skipped, "
            f"{counts.get('quarantined', 0)} quarantined; {frames} frames; {time.time() - started:.1f} s")


def write_report(records, path, columns):
    """The shard's report (CSV), written atomically: it is the Snakemake output that marks the shard done.

    Written with the csv module (as pandas' to_csv would: empty for None, repr for numbers), so the per-shard
    processes never import pandas unless they read an index."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # a killed run's report, half written
        stale.unlink(missing_ok=True)
    with atomic_file(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            writer.writerow(["" if record.get(c) is None else record.get(c) for c in columns])


def discover_videos(video_dir, level, extensions):
    """``(video_id, path)`` for every video under video_dir: level 1 ``video.ext``, level 2 ``class/video.ext``.
    Two files with one stem (``a.avi``, ``a.mp4``) would share a video id and a frames folder: an error naming both."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise UserError(f"{video_dir}: no such directory")
    pattern = "*/*" if level == 2 else "*"
    found = {}
    for path in sorted(video_dir.glob(pattern)):
        if path.is_file() and path.suffix.lower().lstrip(".") in extensions and not path.name.startswith("."):
            video_id = path.relative_to(video_dir).with_suffix("").as_posix()
            if video_id in found:
                raise UserError(f"{found[video_id]} and {path} have one video id ({video_id!r}): their frames "
                                "would share a folder; rename or remove one")
            found[video_id] = path
    return sorted(found.items())


def add_selection_arguments(parser):
    """Options shared by the per-video verbs: which videos, which shard, how many workers, where the report goes."""
    parser.add_argument("--level", type=int, choices=(1, 2), default=2,
                        help="1: SRC/video, 2: SRC/class/video (default)")
    parser.add_argument("--index", help="Parquet index (from `prep index`) naming the videos to process")
    parser.add_argument("--shard", type=int, default=0, help="0-based shard number")
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="processes; each uses one core")
    parser.add_argument("--report", help="CSV report of this shard (status per video)")


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 340x256") from None
    return width, height


def add_resize_arguments(parser, when=""):
    """``--short-side`` / ``--size`` and mmaction2's ``--new-short`` / ``--new-width`` / ``--new-height``;
    ``when`` says when they apply (e.g. "flow from videos: ")."""
    parser.add_argument("--short-side", "--new-short", type=int, help=f"{when}resize so the short side has this length")
    parser.add_argument("--size", type=parse_size, help=f"{when}resize to WIDTHxHEIGHT, e.g. 340x256")
    parser.add_argument("--new-width", type=int, help="mmaction2 alias: width of --size")
    parser.add_argument("--new-height", type=int, help="mmaction2 alias: height of --size")


def resize_options(args):
    """``{"short_side", "size"}`` from the options of :func:`add_resize_arguments`; contradictions are errors."""
    size = args.size
    if args.new_width or args.new_height:
        if not (args.new_width and args.new_height):
            raise UserError("--new-width and --new-height go together")
        size = (args.new_width, args.new_height)
    if size and args.short_side:
        raise UserError("--size and --short-side exclude each other")
    return {"short_side": args.short_side, "size": size}
