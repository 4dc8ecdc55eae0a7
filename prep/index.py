"""The dataset index: every video its official annotation files name, its label, split membership and file.

``python -m prep index DATASET SPLITS_DIR VIDEO_DIR OUT.parquet`` — one row per video; ``status`` is ``ok`` or
``missing: <reason>``. The frames and flow shards read their video lists from here, and the annotation writers
start from it, so one label map serves every format.
"""
from pathlib import Path

import pandas as pd

from prep import UserError
from prep.atomic import atomic_file
from prep.datasets import read_dataset
from prep.datasets.kinetics400 import CLASS_FOLDER_FORMS

INDEX_COLUMNS = ["video_id", "class_name", "label", "video_path", "status"]


def build_index(dataset, splits_dir, video_dir, class_folders="mmaction2"):
    """A DataFrame with one row per video (columns INDEX_COLUMNS + split_<name>), and the class list;
    ``class_folders``: Kinetics' class-folder form in the video ids (see :func:`prep.datasets.read_dataset`)."""
    index = read_dataset(dataset, splits_dir, class_folders)
    video_dir = Path(video_dir)
    rows = []
    found, reasons = index.locate(video_dir) if index.locate else (None, None)
    reasons = dict(reasons or [])
    for video in index.videos:
        path = index.resolve_path(video_dir, video.path) if index.resolve_path else video_dir / video.path
        if found is not None:  # located in one scan (Kinetics: class-folder variants, flat, .mp4/.mkv/.webm)
            path = found.get(video.video_id, video_dir / video.path)
            status = "ok" if video.video_id in found else f"missing: {reasons[video.video_id]}"
        elif not path.is_file():
            status = "missing: not found"
        elif path.stat().st_size == 0:
            status = "missing: empty file"
        else:
            status = "ok"
        row = {"video_id": video.video_id, "class_name": video.class_name, "label": index.label_of(video.class_name),
               "video_path": path.relative_to(video_dir).as_posix() if status != "missing: not found" else video.path,
               "status": status}
        row.update({f"split_{name}": video.splits.get(name, "unused") for name in index.split_names})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=INDEX_COLUMNS + [f"split_{n}" for n in index.split_names])
    return frame, index.classes


def write_index(frame, classes, path):
    """Parquet with the class list in its metadata, written atomically."""
    table_meta = {"classes": "\n".join(classes)}
    frame = frame.copy()
    frame.attrs.update(table_meta)
    with atomic_file(path, "wb") as handle:
        frame.to_parquet(handle, index=False)


def read_index(path):
    frame = pd.read_parquet(path)
    classes = frame.attrs.get("classes", "")
    if not classes:
        raise UserError(f"{path}: not an actionflow index (no class list in its metadata)")
    return frame, classes.split("\n")


def add_class_folders_argument(parser):
    parser.add_argument("--class-folders", choices=sorted(CLASS_FOLDER_FORMS), default="mmaction2",
                        help="Kinetics class folders in the video ids: mmaction2 (spaces as _, what whitespace-split "
                             "lists need; default) or label (as 3D-ResNets / MindSpore-I3D join root/label/video)")


def run(args):
    frame, classes = build_index(args.dataset, args.splits_dir, args.video_dir, args.class_folders)
    write_index(frame, classes, args.out)
    missing = frame[frame["status"] != "ok"]
    print(f"index: {len(frame)} videos, {len(classes)} classes, {len(missing)} missing → {args.out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("index", help="read a dataset's classes and splits into a Parquet index",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="synthetic, ucf101, hmdb51 or kinetics400")
    parser.add_argument("splits_dir", help="the dataset's official split / annotation files")
    parser.add_argument("video_dir", help="the dataset's videos")
    parser.add_argument("out", help="index file (.parquet)")
    add_class_folders_argument(parser)
    parser.set_defaults(func=run)
