"""Every annotation format from one manifest, so the label index is the same everywhere.

From the dataset index and the frames / flow shard reports, ``python -m prep annotations`` writes into OUT_DIR:

- ``manifest.parquet`` — one row per video: video_id, class_name, label, split_<k>, video_path, fps, width, height,
  container_frames, n_frames, n_flow, status (``ok`` or why not), note; and the frame / flow naming convention.
- mmaction2 lists: ``{name}_rawframes.txt`` (``class/video n_frames label``), ``{name}_flow.txt`` (flow count),
  ``{name}_videos.txt`` (``class/video.ext label``), where name is ``{dataset}_{train|val}_split_{k}`` or, for
  Kinetics, ``kinetics400_{train|val}_list``; ``label_map.txt`` (one class per line, line k = label k).
- PaddleVideo lists under ``paddle/``: ``{name}_frames.txt`` (``class/video.ext n_frames label``),
  ``{name}_videos.txt`` and ``label_list.txt`` (``0 ClassName``).
- 3D-ResNets / MindSpore-I3D JSON: ``{dataset}_0{k}.json`` (UCF101 style), ``hmdb51_{k}.json``,
  ``kinetics400_{train,val}.json``.

``python -m prep lists DATASET --splits DIR --frames DIR --out DIR`` does the same for a rawframes tree made by
other tools (``class/video/img_*.jpg``, ``flow_x_*``, ``flow_y_*``).
"""
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from prep.base.atomic import atomic_directory, atomic_file
from prep.base.errors import UserError
from prep.base.frame_source import FRAMES_MARKER, NAMINGS, FrameError, describe_naming, frame_videos, open_frames
from prep.base.index_file import read_index
from prep.datasets import DATASETS, build_index, dataset_module

MANIFEST_COLUMNS = ["video_id", "class_name", "label", "video_path", "fps", "width", "height", "container_frames",
                    "n_frames", "n_flow", "status", "note"]
JSON_SUBSETS = {"train": "training", "test": "validation"}  # 3D-ResNets' subset names


def split_columns(frame):
    return [c for c in frame.columns if c.startswith("split_")]


def read_reports(paths):
    """Concatenate shard reports (CSV); an absent list gives an empty frame."""
    frames = [pd.read_csv(p, dtype={"video_id": str, "status": str, "note": str}, keep_default_na=False)
              for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["video_id", "status"])


def build_manifest(index, frames_report, flow_report):
    """Join index, frames and flow reports; ``status`` says ``ok`` or the first reason a video is unusable."""
    frames = frames_report.set_index("video_id")
    flow = flow_report.set_index("video_id")
    rows = []
    for row in index.to_dict("records"):
        vid = row["video_id"]
        frame_info = frames.loc[vid].to_dict() if vid in frames.index else {}
        flow_info = flow.loc[vid].to_dict() if vid in flow.index else {}
        status = row["status"]
        if status == "ok":
            status = _stage_status("frames", frame_info) or _stage_status("flow", flow_info) or "ok"
        meta = {k: frame_info.get(k) for k in ("fps", "width", "height", "container_frames", "n_frames")}
        rows.append({**row, **meta, "n_flow": flow_info.get("n_flow"), "status": status,
                     "note": frame_info.get("note", "") or ""})
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS + split_columns(index))
    for column in ("width", "height", "container_frames", "n_frames", "n_flow"):
        manifest[column] = pd.to_numeric(manifest[column], errors="coerce").astype("Int64")
    manifest["fps"] = pd.to_numeric(manifest["fps"], errors="coerce")
    return manifest


def _stage_status(stage, info):
    if not info:
        return f"missing: no {stage} report"
    if str(info["status"]).startswith("quarantined"):
        return f"quarantined: {stage}: {info['status'].split(':', 1)[1].strip()}"
    return None


def write_lines(path, lines):
    Path(path).write_text("".join(f"{line}\n" for line in lines))


def write_annotations(manifest, classes, dataset, out_dir, naming="mmaction"):
    """Every list and JSON into ``out_dir`` (created atomically, replaced if it exists); the manifest records the
    frame ``naming`` of the tree."""
    usable = manifest[manifest["status"] == "ok"]
    out_dir = Path(out_dir)
    with atomic_directory(out_dir.with_name(out_dir.name + ".new")) as tmp:
        (tmp / "paddle").mkdir()
        write_lines(tmp / "label_map.txt", classes)
        write_lines(tmp / "paddle" / "label_list.txt", [f"{i} {name}" for i, name in enumerate(classes)])
        module = dataset_module(dataset)
        databases = {}  # JSON file -> its database (one per split, or per subset: the dataset says)
        for column in split_columns(manifest):
            split = column[len("split_"):]
            for subset in ("train", "test"):
                rows = usable[usable[column] == subset]
                name = module.list_name(split, subset)
                ids, labels = rows["video_id"].tolist(), rows["label"].tolist()
                write_lines(tmp / f"{name}_rawframes.txt",
                            [f"{v} {n} {y}" for v, n, y in zip(ids, rows["n_frames"], labels)])
                write_lines(tmp / f"{name}_flow.txt", [f"{v} {n} {y}" for v, n, y in zip(ids, rows["n_flow"], labels)])
                write_lines(tmp / f"{name}_videos.txt", [f"{p} {y}" for p, y in zip(rows["video_path"], labels)])
                write_lines(tmp / "paddle" / f"{name}_frames.txt",
                            [f"{p} {n} {y}" for p, n, y in zip(rows["video_path"], rows["n_frames"], labels)])
                write_lines(tmp / "paddle" / f"{name}_videos.txt", [f"{p} {y}" for p, y in zip(rows["video_path"], labels)])
                database = databases.setdefault(module.json_name(split, subset), {})
                for vid, cls, n in zip(ids, rows["class_name"], rows["n_frames"]):
                    database[vid.rsplit("/", 1)[-1]] = {"subset": JSON_SUBSETS[subset],
                                                        "annotations": {"label": cls, "segment": [1, int(n) + 1]}}
        for json_file, database in databases.items():
            with open(tmp / json_file, "w") as handle:
                json.dump({"labels": list(classes), "database": database}, handle)
        manifest = manifest.copy()
        manifest.attrs.update({"classes": "\n".join(classes), "naming": describe_naming(naming)})
        manifest.to_parquet(tmp / "manifest.parquet", index=False)
    # swap the new tree in: an old one is removed only once the new one is complete
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.rename(out_dir, old)
    os.rename(out_dir.with_name(out_dir.name + ".new"), out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return usable


def place_in_tree(video_ids, tree_ids):
    """``{video_id: id in the tree}`` for the videos a frames tree holds: under their own ``class/video`` id, else
    under the same video name in any folder or flat (other tools' trees: flat Kinetics clips, class folders spelled
    another way). A name found twice is an error naming both; videos not found are left out."""
    tree_ids = list(tree_ids)
    exact = set(tree_ids)
    by_name = {}
    for tree_id in tree_ids:
        by_name.setdefault(tree_id.rsplit("/", 1)[-1], []).append(tree_id)
    placed = {}
    for vid in video_ids:
        if vid in exact:
            placed[vid] = vid
            continue
        candidates = by_name.get(vid.rsplit("/", 1)[-1], [])
        if len(candidates) > 1:
            raise UserError(f"video {vid!r}: two frame folders or packs could be it: {candidates[0]} and "
                            f"{candidates[1]}; keep one")
        if candidates:
            placed[vid] = candidates[0]
    return placed


def _tree_count(root, tree_id, modality, naming):
    try:
        with open_frames(root, tree_id, modality, naming) as frames:
            return len(frames), frames
    except FrameError:
        return 0, None


def manifest_from_tree(dataset, splits_dir, frames_dir, flow_dir=None, video_dir=None, naming="mmaction"):
    """A manifest for a frames tree made by other tools (class folders or flat; folders or packs): counts through
    the frame source, ``n_frames`` files written into folders that lack one. The lists address the videos where the
    tree has them."""
    index, classes = build_index(dataset, splits_dir, video_dir or frames_dir)
    frames_dir = Path(frames_dir)
    flow_dir = Path(flow_dir or frames_dir)
    placed = place_in_tree(index["video_id"], frame_videos(frames_dir, naming=naming))
    if not placed:
        raise UserError(f"--frames {frames_dir}: none of the {len(index)} videos of the {dataset} lists has frames "
                        f"there (looked for [class/]video folders and .pack files named as in the lists)")
    frame_rows, flow_rows = [], []
    for vid in index["video_id"]:
        if vid not in placed:
            frame_rows.append({"video_id": vid, "status": "quarantined: no frame folder or pack"})
            continue
        n_frames, frames = _tree_count(frames_dir, placed[vid], "rgb", naming)
        n_flow, _ = _tree_count(flow_dir, placed[vid], "flow", naming)
        frame_rows.append({"video_id": vid, "status": "done" if n_frames else f"quarantined: no {naming} frames",
                           "n_frames": n_frames})
        flow_rows.append({"video_id": vid, "status": "done" if n_flow else "quarantined: no flow frames",
                          "n_flow": n_flow})
        if n_frames and frames.storage == "folder" and frames.marked_count() is None:  # for 3D-ResNets' readers
            with atomic_file(frames.path / FRAMES_MARKER, sync=False) as handle:  # as the frames: no fsync
                handle.write(f"{n_frames}\n")
    index["status"] = "ok"  # the tree stands in for the videos
    index["video_id"] = [placed.get(vid, vid) for vid in index["video_id"]]
    frame_report, flow_report = (pd.DataFrame(rows, columns=["video_id", "status", column]) for rows, column in
                                 ((frame_rows, "n_frames"), (flow_rows, "n_flow")))
    for report in (frame_report, flow_report):
        report["video_id"] = [placed.get(vid, vid) for vid in report["video_id"]]
    return build_manifest(index, frame_report, flow_report), classes


def summary_line(manifest):
    counts = manifest["status"].str.split(":").str[0].value_counts().to_dict()
    return (f"annotations: {len(manifest)} videos — {counts.get('ok', 0)} ok, {counts.get('missing', 0)} missing, "
            f"{counts.get('quarantined', 0)} quarantined")


def run_annotations(args):
    index, classes = read_index(args.index)
    manifest = build_manifest(index, read_reports(args.frames_reports), read_reports(args.flow_reports))
    write_annotations(manifest, classes, args.dataset, args.out_dir)
    print(summary_line(manifest) + f" → {args.out_dir}")
    return 0


def run_lists(args):
    if not Path(args.frames).is_dir():
        raise UserError(f"--frames {args.frames}: no such directory")
    manifest, classes = manifest_from_tree(args.dataset, args.splits, args.frames, args.flow, args.videos,
                                           naming=args.naming)
    write_annotations(manifest, classes, args.dataset, args.out, naming=args.naming)
    print(summary_line(manifest) + f" → {args.out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("annotations", help="manifest + every list/JSON from the index and shard reports",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("index", help="index .parquet from `prep index`")
    parser.add_argument("out_dir")
    parser.add_argument("--frames-reports", nargs="+", required=True, help="CSV reports of the frames shards")
    parser.add_argument("--flow-reports", nargs="+", required=True, help="CSV reports of the flow shards")
    parser.set_defaults(func=run_annotations)

    parser = subparsers.add_parser("lists", help="every annotation format for an existing rawframes tree",
                                   description="Every annotation format for a rawframes tree made by other tools.")
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--splits", required=True, help="the dataset's official split files (Kinetics: the CSVs)")
    parser.add_argument("--frames", required=True, help="rawframes root: [class/]video/ folders or [class/]video.pack")
    parser.add_argument("--flow", help="flow root if not the frames root: class/video/flow_x_00001.jpg")
    parser.add_argument("--videos", help="video root, to record video paths with their extensions")
    parser.add_argument("--naming", choices=sorted(NAMINGS), default="mmaction",
                        help="frame names of the tree (prep.base.frame_source.NAMINGS)")
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=run_lists)
