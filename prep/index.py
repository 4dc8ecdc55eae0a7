"""The dataset index: every video its official annotation files name, its label, split membership and file.

``python -m prep index DATASET SPLITS_DIR VIDEO_DIR OUT.parquet`` — one row per video; ``status`` is ``ok`` or
``missing: <reason>``. The frames and flow shards read their video lists from here, and the annotation writers
start from it, so one label map serves every format.
"""
from prep.base import arguments
from prep.base.index_file import write_index
from prep.datasets import DATASETS, add_class_folders_argument, build_index


def run(args):
    frame, classes = build_index(args.dataset, args.splits_dir, args.video_dir, args.class_folders)
    write_index(frame, classes, args.out)
    missing = frame[frame["status"] != "ok"]
    print(f"index: {len(frame)} videos, {len(classes)} classes, {len(missing)} missing → {args.out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("index", help="read a dataset's classes and splits into a Parquet index",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("splits_dir", type=arguments.input_path, help="the dataset's official split / annotation files")
    parser.add_argument("video_dir", type=arguments.input_dir, help="the dataset's videos")
    parser.add_argument("out", type=arguments.output_file, help="index file (.parquet)")
    add_class_folders_argument(parser)
    parser.set_defaults(func=run)
