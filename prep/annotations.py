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

from prep import UserError
from prep.atomic import atomic_directory, atomic_file
from prep.base.frame_source import describe_naming
from prep.index import build_index, read_index

MANIFEST_COLUMNS = ["video_id", "class_name", "label", "video_path", "fps", "width", "height", "container_frames",
                    "n_frames", "n_flow", "status", "note"]
SUBSET_NAMES = {"train": "train", "test": "val"}  # mmaction2 names the test lists "val"
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


def list_name(dataset, split, subset):
    if dataset == "kinetics400":
        return f"{dataset}_{SUBSET_NAMES[subset]}_list"
    return f"{dataset}_{SUBSET_NAMES[subset]}_split_{split}"


def json_name(dataset, split):
    if dataset == "kinetics400":
        return None  # one JSON per subset, written below
    return f"{dataset}_{split}.json" if dataset == "hmdb51" else f"{dataset}_0{split}.json"


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
        kinetics_json = {}
        for column in split_columns(manifest):
            split = column[len("split_"):]
            database = {}
            for subset in ("train", "test"):
                rows = usable[usable[column] == subset]
                name = list_name(dataset, split, subset)
                ids, labels = rows["video_id"].tolist(), rows["label"].tolist()
                write_lines(tmp / f"{name}_rawframes.txt",
                            [f"{v} {n} {y}" for v, n, y in zip(ids, rows["n_frames"], labels)])
                write_lines(tmp / f"{name}_flow.txt", [f"{v} {n} {y}" for v, n, y in zip(ids, rows["n_flow"], labels)])
                write_lines(tmp / f"{name}_videos.txt", [f"{p} {y}" for p, y in zip(rows["video_path"], labels)])
                write_lines(tmp / "paddle" / f"{name}_frames.txt",
                            [f"{p} {n} {y}" for p, n, y in zip(rows["video_path"], rows["n_frames"], labels)])
                write_lines(tmp / "paddle" / f"{name}_videos.txt", [f"{p} {y}" for p, y in zip(rows["video_path"], labels)])
                for vid, cls, n in zip(ids, rows["class_name"], rows["n_frames"]):
                    entry = {"subset": JSON_SUBSETS[subset], "annotations": {"label": cls, "segment": [1, int(n) + 1]}}
                    database[vid.rsplit("/", 1)[-1]] = entry
                    kinetics_json.setdefault(SUBSET_NAMES[subset], {})[vid.rsplit("/", 1)[-1]] = entry
            if json_name(dataset, split):
                with open(tmp / json_name(dataset, split), "w") as handle:
                    json.dump({"labels": list(classes), "database": database}, handle)
        if dataset == "kinetics400":
            for subset, database in kinetics_json.items():
                with open(tmp / f"{dataset}_{subset}.json", "w") as handle:
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


def manifest_from_tree(dataset, splits_dir, frames_dir, flow_dir=None, video_dir=None):
    """A manifest for a rawframes tree made by other tools: counts from the files, n_frames files written."""
    index, classes = build_index(dataset, splits_dir, video_dir or frames_dir)
    frames_dir = Path(frames_dir)
    flow_dir = Path(flow_dir or frames_dir)
    frame_rows, flow_rows = [], []
    for vid in index["video_id"]:
        folder = frames_dir / vid
        if not folder.is_dir():
            frame_rows.append({"video_id": vid, "status": "quarantined: no frame directory"})
            continue
        names = os.listdir(folder)
        n_frames = _largest_index(names, "img_")
        n_flow = min(_largest_index(os.listdir(flow_dir / vid), p) if (flow_dir / vid).is_dir() else 0
                     for p in ("flow_x_", "flow_y_"))
        frame_rows.append({"video_id": vid, "status": "done" if n_frames else "quarantined: no img_ frames",
                           "n_frames": n_frames})
        flow_rows.append({"video_id": vid, "status": "done" if n_flow else "quarantined: no flow frames",
                          "n_flow": n_flow})
        if n_frames and "n_frames" not in names:
            with atomic_file(folder / "n_frames") as handle:
                handle.write(f"{n_frames}\n")
    index["status"] = "ok"  # the tree stands in for the videos
    return build_manifest(index, pd.DataFrame(frame_rows), pd.DataFrame(flow_rows)), classes


def _largest_index(names, prefix):
    numbers = [int(n[len(prefix):-4]) for n in names if n.startswith(prefix) and n.endswith(".jpg")
               and n[len(prefix):-4].isdigit()]
    return max(numbers, default=0)


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
    manifest, classes = manifest_from_tree(args.dataset, args.splits, args.frames, args.flow, args.videos)
    write_annotations(manifest, classes, args.dataset, args.out)
    print(summary_line(manifest) + f" → {args.out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("annotations", help="manifest + every list/JSON from the index and shard reports",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("index", help="index .parquet from `prep index`")
    parser.add_argument("out_dir")
    parser.add_argument("--frames-reports", nargs="+", required=True, help="CSV reports of the frames shards")
    parser.add_argument("--flow-reports", nargs="+", required=True, help="CSV reports of the flow shards")
    parser.set_defaults(func=run_annotations)

    parser = subparsers.add_parser("lists", help="every annotation format for an existing rawframes tree",
                                   description="Every annotation format for a rawframes tree made by other tools.")
    parser.add_argument("dataset", help="ucf101, hmdb51, kinetics400 or synthetic")
    parser.add_argument("--splits", required=True, help="the dataset's official split files (Kinetics: the CSVs)")
    parser.add_argument("--frames", required=True, help="rawframes root: class/video/img_00001.jpg")
    parser.add_argument("--flow", help="flow root if not the frames root: class/video/flow_x_00001.jpg")
    parser.add_argument("--videos", help="video root, to record video paths with their extensions")
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=run_lists)
