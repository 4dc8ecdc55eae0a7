"""Arrange a real dataset's extracted archives (or a copy on disk) into the layout the pipeline reads.

``python -m prep arrange DATASET SOURCES.json EXTRACTED_DIR OUT_RAW --missing MISSING.csv [--max-missing-fraction F]``

OUT_RAW gets ``videos/<class>/<video>.<ext>`` and ``splits/`` (the official split / annotation files), as the
synthetic dataset writes them; ``prep index DATASET OUT_RAW/splits OUT_RAW/videos`` reads it. Videos are hard links
to the extracted files (no second copy on disk), else copies; videos of a tree already on disk (``sources.local``)
are hard links, else symbolic links to it. Where each dataset's files are inside its archives is told by
``prep.datasets.<name>.arrange_sources`` (UCF101, HMDB51: the folder of class folders; Kinetics: each clip found by
name in class folders or flat, at any depth, put under its CSV label, spaces and parentheses kept).

MISSING.csv (``video_id,class_name,splits,reason``) lists every video the official files name that is not in
OUT_RAW (reasons: ``not found``, ``empty file: <path>``), and those videos are left out of every list later on.
The run fails — OUT_RAW is not written, the report is kept as ``<MISSING>.rejected.csv`` — when the missing share
is above ``--max-missing-fraction`` (sources.kinetics400.max_missing_fraction, default 0.15; UCF101 and HMDB51: 0).
"""
import os
import shutil
from pathlib import Path

from prep.base.atomic import atomic_directory
from prep.base.errors import UserError
from prep.base.index_file import missing_report_rows, write_missing
from prep.base.names import safe_relative
from prep.base.sources import read_sources
from prep.datasets import REAL_DATASETS, build_index, dataset_module

class Linker:
    """Put a file under a new name without a second copy: hard link; else a copy (extracted files, which may be
    removed later) or a symbolic link (a tree the user keeps on disk)."""

    def __init__(self, local_trees):
        self.local = [Path(t).resolve() for t in local_trees]
        self.counts = {"hard links": 0, "copies": 0, "symbolic links": 0}

    def __call__(self, source, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
            self.counts["hard links"] += 1
            return
        except OSError:
            pass
        resolved = Path(source).resolve()
        if any(resolved == t or t in resolved.parents for t in self.local):
            os.symlink(resolved, target)
            self.counts["symbolic links"] += 1
        else:
            shutil.copy2(source, target)
            self.counts["copies"] += 1


def _copy_split_files(paths, splits_dir):
    splits_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        target = splits_dir / path.name
        if target.exists():
            if target.read_bytes() != path.read_bytes():
                raise UserError(f"two different split files named {path.name!r}: {path} and another one")
            continue
        shutil.copyfile(path, target)


def missing_rows(dataset, raw_dir, notes=None):
    """``(rows, total)``: the missing report rows of an arranged tree (from the same index `prep index` builds);
    notes: ``{video_id: reason}`` that say more than the index can (the source file that was empty)."""
    frame, _classes = build_index(dataset, raw_dir / "splits", raw_dir / "videos")
    return missing_report_rows(frame, notes), len(frame)


def arrange(dataset, sources, extracted_dir, out_raw, missing_csv, max_missing_fraction=0.0):
    """Build out_raw (atomically) and the missing report; raise when too much is missing."""
    if dataset not in REAL_DATASETS:
        raise UserError(f"arrange: {dataset!r} is not a real dataset ({', '.join(REAL_DATASETS)})")
    module = dataset_module(dataset)
    out_raw, missing_csv = Path(out_raw), Path(missing_csv)
    extracted = Path(extracted_dir) if extracted_dir else None
    roots = sorted(p for p in extracted.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if extracted is not None and extracted.is_dir() else []
    roots += [Path(t) for t in sources["trees"]]
    link = Linker(sources["trees"])
    if out_raw.exists():
        shutil.rmtree(out_raw)
    with atomic_directory(out_raw) as tmp:
        found = module.arrange_sources(roots, sources["files"])
        _copy_split_files(found.split_files, tmp / "splits")
        (tmp / "videos").mkdir()
        for source, target in found.videos:
            link(source, tmp / "videos" / safe_relative(target, f"{dataset}: video"))
        rows, total = missing_rows(dataset, tmp, found.notes)
        share = len(rows) / total if total else 1.0
        if share > max_missing_fraction:
            rejected = missing_csv.with_name(missing_csv.stem + ".rejected.csv")
            write_missing(rejected, rows)
            failed = sources.get("failed") or []
            reasons = {}
            for row in rows:
                reasons[row[3].split(":")[0]] = reasons.get(row[3].split(":")[0], 0) + 1
            raise UserError(
                f"{dataset}: {len(rows)} of {total} videos ({share:.1%}) are missing, more than the "
                f"{max_missing_fraction:.1%} allowed (sources.{dataset}.max_missing_fraction); "
                f"reasons: {', '.join(f'{n} {r}' for r, n in sorted(reasons.items()))}"
                + (f"; {len(failed)} archives could not be downloaded (rerun to resume them)" if failed else "")
                + f"; the list is in {rejected}")
        write_missing(missing_csv, rows)
    missing_csv.with_name(missing_csv.stem + ".rejected.csv").unlink(missing_ok=True)
    counts = ", ".join(f"{n} {kind}" for kind, n in link.counts.items() if n)
    return {"where": found.where, "total": total, "missing": len(rows), "links": counts}


def run(args):
    sources = read_sources(args.sources)
    if sources["dataset"] != args.dataset:
        raise UserError(f"{args.sources}: sources of {sources['dataset']}, not {args.dataset}")
    result = arrange(args.dataset, sources, args.extracted, args.out_raw, args.missing,
                     max_missing_fraction=args.max_missing_fraction)
    print(f"arrange {args.dataset}: {result['where']}; {result['total'] - result['missing']} of {result['total']} "
          f"videos in {args.out_raw} ({result['links'] or 'none'}); {result['missing']} missing → {args.missing}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("arrange", help="lay a dataset's extracted files out as raw/videos + raw/splits",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=REAL_DATASETS)
    parser.add_argument("sources", help="sources JSON written by `prep fetch`")
    parser.add_argument("extracted", help="directory `prep unpack` extracted the archives into")
    parser.add_argument("out_raw", help="the dataset's raw directory (videos/, splits/)")
    parser.add_argument("--missing", required=True, help="missing report (CSV) to write")
    parser.add_argument("--max-missing-fraction", type=float, default=0.0,
                        help="fail when a larger share of the videos is missing (default 0)")
    parser.set_defaults(func=run)
