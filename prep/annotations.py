"""Every annotation format from one manifest, so the label index is the same everywhere.

From the dataset index and the frames / flow shard reports, ``python -m prep annotations`` writes into OUT_DIR:

- ``manifest.parquet`` — one row per video: video_id, class_name, label, split_<k>, video_path, frame_dir, flow_dir,
  fps, width, height, container_frames, n_frames, n_flow, flow_backend (``prep flow --backend`` that computed the
  flow: opencv or torch, the same numbers), status (``ok`` or why not), note; and the rgb and flow
  namings of the trees (:mod:`prep.base.frame_source`).
- mmaction2 lists: ``{name}_rawframes.txt`` (``class/video n_frames label``), ``{name}_flow.txt`` (flow count),
  ``{name}_videos.txt`` (``class/video.ext label``), where name is ``{dataset}_{train|val}_split_{k}`` or, for
  Kinetics, ``kinetics400_{train|val}_list``; ``label_map.txt`` (one class per line, line k = label k).
- PaddleVideo lists under ``paddle/``: ``{name}_frames.txt`` (``class/video n_frames label``, the frame folder
  as it is on disk), ``{name}_videos.txt`` and ``label_list.txt`` (``0 ClassName``).
- 3D-ResNets / MindSpore-I3D JSON: ``{dataset}_0{k}.json`` (UCF101 style), ``hmdb51_{k}.json``, one
  ``kinetics400.json`` (training and validation together, as 3D-ResNets takes one file).

Every path a file names exists on disk for the reader it targets, or the file is not written and the summary says
why (:func:`unwritable`): mmaction2's and PaddleVideo's list readers split lines on whitespace, so no listed path
may hold one; 3D-ResNets and MindSpore-I3D join ``root/<label>/<key>`` from a JSON, so the frame folder must be
named so (Kinetics: ``--class-folders label``); video lists need the video root.

``python -m prep lists DATASET --splits DIR --frames DIR --out DIR`` does the same for a frames tree made by other
tools, in any naming (``--naming``, ``--flow-naming``), folders or packs, class folders (any Kinetics form,
PaddleVideo's ``class/video.mp4/`` folders) or flat. A tree without any flow gets its rgb lists (no flow lists);
the videos the split files name and the tree lacks are in ``OUT/missing.csv`` (as every other left-out video).
"""
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from prep.base.atomic import atomic_directory, atomic_file
from prep.base.errors import UserError
from prep.base.frame_source import (FRAMES_MARKER, NAMINGS, FrameError, count_frames, describe_naming, frame_videos,
                                    naming_of)
from prep.base.index_file import missing_report_rows, read_index, write_missing
from prep.base.media import VIDEO_EXTENSIONS
from prep.datasets import DATASETS, build_index, dataset_module
from prep.datasets.kinetics400 import add_class_folders_argument, class_folder_variants

MANIFEST_COLUMNS = ["video_id", "class_name", "label", "video_path", "frame_dir", "flow_dir", "fps", "width",
                    "height", "container_frames", "n_frames", "n_flow", "flow_backend", "status", "note"]
JSON_SUBSETS = {"train": "training", "test": "validation"}  # 3D-ResNets' subset names
MISSING_CSV = "missing.csv"


def split_columns(frame):
    return [c for c in frame.columns if c.startswith("split_")]


def read_reports(paths):
    """Concatenate shard reports (CSV); an absent list gives an empty frame."""
    frames = [pd.read_csv(p, dtype={"video_id": str, "status": str, "note": str}, keep_default_na=False)
              for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["video_id", "status"])


def build_manifest(index, frames_report, flow_report, with_flow=True):
    """Join index, frames and flow reports; ``status`` says ``ok`` or the first reason a video is unusable.
    ``frame_dir`` / ``flow_dir`` (the video's frames under the rgb / flow root) are the reports' when they say,
    else the video id (the pipeline writes each video's frames at ``root/video_id``). Without ``with_flow`` (an
    rgb-only tree) no video needs flow."""
    frames = frames_report.set_index("video_id")
    flow = flow_report.set_index("video_id")
    rows = []
    for row in index.to_dict("records"):
        vid = row["video_id"]
        frame_info = frames.loc[vid].to_dict() if vid in frames.index else {}
        flow_info = flow.loc[vid].to_dict() if vid in flow.index else {}
        status = row["status"]
        if status == "ok":
            status = (_stage_status("frames", frame_info) or (with_flow and _stage_status("flow", flow_info))
                      or "ok")
        meta = {k: frame_info.get(k) for k in ("fps", "width", "height", "container_frames", "n_frames")}
        backend = flow_info.get("backend")
        rows.append({**row, **meta, "n_flow": flow_info.get("n_flow"), "status": status,
                     "flow_backend": backend if isinstance(backend, str) else "",
                     "frame_dir": _folder(frame_info, "frame_dir", vid), "flow_dir": _folder(flow_info, "flow_dir", vid),
                     "note": frame_info.get("note", "") or ""})
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS + split_columns(index))
    for column in ("width", "height", "container_frames", "n_frames", "n_flow"):
        manifest[column] = pd.to_numeric(manifest[column], errors="coerce").astype("Int64")
    manifest["fps"] = pd.to_numeric(manifest["fps"], errors="coerce")
    return manifest


def _folder(info, column, video_id):
    value = info.get(column)
    return value if isinstance(value, str) and value else video_id


def _stage_status(stage, info):
    if not info:
        return f"missing: no {stage} report"
    if str(info["status"]).startswith("missing"):  # a tree made elsewhere that lacks the video
        return info["status"]
    if str(info["status"]).startswith("quarantined"):
        return f"quarantined: {stage}: {info['status'].split(':', 1)[1].strip()}"
    return None


def write_lines(path, lines):
    Path(path).write_text("".join(f"{line}\n" for line in lines))


def unwritable(kind, rows, with_videos=True, with_flow=True):
    """Why a file of ``kind`` cannot name ``rows`` so that its reader finds them (None: it can).

    kinds: ``split`` (a whitespace-split list of frame / flow folders: mmaction2's RawframeDataset and PaddleVideo's
    FrameDataset do ``line.strip().split()``), ``video_split`` (the same over video files: mmaction2's VideoDataset
    splits on ' '), ``json`` (3D-ResNets / MindSpore-I3D join ``root/<label>/<key>``, rgb and flow roots alike)."""
    if kind == "json":
        for frame_dir, flow_dir, label, vid in zip(rows["frame_dir"], rows["flow_dir"], rows["class_name"],
                                                   rows["video_id"]):
            implied = f"{label}/{vid.rsplit('/', 1)[-1]}"
            flow_dir = flow_dir if with_flow else implied
            if frame_dir != implied or flow_dir != implied:
                return (f"3D-ResNets / MindSpore-I3D would read {implied!r}, the frames are at {frame_dir!r}"
                        + ("" if flow_dir == frame_dir else f" and {flow_dir!r}")
                        + " (Kinetics: --class-folders label)")
        return None
    if kind == "video_split" and not with_videos:
        return "no video root given (--videos)"
    if kind == "flow_split" and not with_flow:
        return "no flow in the tree (rgb only)"
    frame_columns = ["frame_dir", "flow_dir"] if with_flow else ["frame_dir"]
    for column in ["video_path"] if kind == "video_split" else frame_columns:
        spaced = [p for p in rows[column] if str(p).split() != [str(p)]]
        if spaced:
            return (f"{spaced[0]!r} holds whitespace, which mmaction2 and PaddleVideo split lines on "
                    "(Kinetics: --class-folders mmaction2)")
    return None


def write_annotations(manifest, classes, dataset, out_dir, naming="mmaction", flow_naming="mmaction",
                      with_videos=True, with_flow=True):
    """Every list and JSON into ``out_dir`` (created atomically, replaced if it exists) whose paths exist for its
    reader (:func:`unwritable`); the manifest records the trees' namings; ``missing.csv`` (as ``prep arrange``'s:
    video_id, class_name, splits, reason) lists every video the split files name that the lists leave out.
    Without ``with_flow`` (an rgb-only tree) no flow list is written. Returns ``{file: why not written}``."""
    usable = manifest[manifest["status"] == "ok"]
    out_dir = Path(out_dir)
    skipped = {}
    reasons = {kind: unwritable(kind, usable, with_videos, with_flow)
               for kind in ("split", "flow_split", "video_split", "json")}

    def write_list(path, kind, lines):
        if reasons[kind]:
            skipped[path.relative_to(tmp).as_posix()] = reasons[kind]
        else:
            write_lines(path, lines)

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
                labels = rows["label"].tolist()
                frames = list(zip(rows["frame_dir"], rows["n_frames"], labels))
                write_list(tmp / f"{name}_rawframes.txt", "split", [f"{d} {n} {y}" for d, n, y in frames])
                write_list(tmp / f"{name}_flow.txt", "flow_split",
                           [f"{d} {n} {y}" for d, n, y in zip(rows["flow_dir"], rows["n_flow"], labels)])
                write_list(tmp / "paddle" / f"{name}_frames.txt", "split", [f"{d} {n} {y}" for d, n, y in frames])
                videos = [f"{p} {y}" for p, y in zip(rows["video_path"], labels)]
                write_list(tmp / f"{name}_videos.txt", "video_split", videos)
                write_list(tmp / "paddle" / f"{name}_videos.txt", "video_split", videos)
                database = databases.setdefault(module.json_name(split, subset), {})
                for vid, cls, n in zip(rows["video_id"], rows["class_name"], rows["n_frames"]):
                    database[vid.rsplit("/", 1)[-1]] = {"subset": JSON_SUBSETS[subset],
                                                        "annotations": {"label": cls, "segment": [1, int(n) + 1]}}
        for json_file, database in databases.items():
            if reasons["json"]:
                skipped[json_file] = reasons["json"]
                continue
            with open(tmp / json_file, "w") as handle:
                json.dump({"labels": list(classes), "database": database}, handle)
        write_missing(tmp / MISSING_CSV, missing_report_rows(manifest))
        manifest = manifest.copy()
        manifest.attrs.update({"classes": "\n".join(classes), "naming": describe_naming(naming),
                               "flow_naming": describe_naming(flow_naming)})
        manifest.to_parquet(tmp / "manifest.parquet", index=False)
    # swap the new tree in: an old one is removed only once the new one is complete
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.rename(out_dir, old)
    os.rename(out_dir.with_name(out_dir.name + ".new"), out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return skipped


def tree_entries(root, naming):
    """``{video stem: [paths under root]}`` of the videos of a frames tree made by any tool: folders or packs, flat
    or in class folders; a folder named after its video file (PaddleVideo: ``class/x.mp4/``) counts as ``x``."""
    by_stem = {}
    for path in frame_videos(root, None, naming):
        stem = path.rsplit("/", 1)[-1]
        base, dot, extension = stem.rpartition(".")
        if dot and extension.lower() in VIDEO_EXTENSIONS:
            stem = base
        by_stem.setdefault(stem, []).append(path)
    return by_stem


def find_in_tree(by_stem, video_id, class_name):
    """The path of ``video_id`` in a scanned tree: its own ``class/video`` id; else in a folder of its class (the
    label's or another Kinetics form; case-insensitive, as UCF101's folders and lists disagree in case) or flat;
    else under the same video name in any one folder. None when absent; two candidates of one rank are an error
    naming both."""
    folder, _, stem = video_id.rpartition("/")
    paths = sorted(by_stem.get(stem, []))
    if video_id in paths:
        return video_id
    accepted = {f.lower() for f in [folder, *class_folder_variants(class_name)]} | {""}
    for candidates in ([p for p in paths if p.rpartition("/")[0].lower() in accepted], paths):
        if len(candidates) > 1:
            raise UserError(f"video {video_id!r}: two frame folders or packs could be it: {candidates[0]} and "
                            f"{candidates[1]}; keep one")
        if candidates:
            return candidates[0]
    return None


def manifest_from_tree(dataset, splits_dir, frames_dir, flow_dir=None, video_dir=None, naming="mmaction",
                       flow_naming=None, class_folders="mmaction2"):
    """A manifest for a frames tree made by other tools: each video found in the tree, counted through the frame
    source (markers or the numbered files); ``n_frames`` files written into rgb folders that lack one."""
    flow_naming = flow_naming or naming
    index, classes = build_index(dataset, splits_dir, video_dir or frames_dir, class_folders)
    frames_dir = Path(frames_dir)
    flow_dir = Path(flow_dir or frames_dir)
    rgb_tree, flow_tree = tree_entries(frames_dir, naming), tree_entries(flow_dir, flow_naming)
    frame_rows, flow_rows = [], []
    for vid, class_name in zip(index["video_id"], index["class_name"]):
        frame_rows.append(_tree_record(frames_dir, find_in_tree(rgb_tree, vid, class_name), vid, "rgb", naming))
        flow_rows.append(_tree_record(flow_dir, find_in_tree(flow_tree, vid, class_name), vid, "flow", flow_naming))
        folder = frames_dir / str(frame_rows[-1].get("frame_dir"))
        if frame_rows[-1]["status"] == "done" and folder.is_dir() and not (folder / FRAMES_MARKER).exists():
            with atomic_file(folder / FRAMES_MARKER, sync=False) as handle:  # for 3D-ResNets' readers; as the frames
                handle.write(f"{frame_rows[-1]['n_frames']}\n")
    with_flow = any(row["status"] == "done" for row in flow_rows)  # none: an rgb-only tree, rgb lists only
    if not any(row["status"] == "done" for row in frame_rows):
        raise UserError(f"--frames {frames_dir}: none of the {len(index)} videos of the {dataset} lists has frames "
                        f"there (looked for [class/]video folders and .pack files named as in the lists, with "
                        f"{naming} names; first: {frame_rows[0]['status'] if frame_rows else '-'})")
    index["status"] = "ok"  # the tree stands in for the videos
    return build_manifest(index, pd.DataFrame(frame_rows), pd.DataFrame(flow_rows), with_flow), classes, with_flow


def _tree_record(root, path, video_id, modality, naming):
    key, column, count = ("rgb", "frame_dir", "n_frames") if modality == "rgb" else ("flow", "flow_dir", "n_flow")
    if path is None:  # the split files name it, the tree lacks it: missing.csv says so
        return {"video_id": video_id, "status": f"missing: no {key} frames in {root}"}
    try:
        n = count_frames(root, path, modality, naming)
    except FrameError as error:
        return {"video_id": video_id, "status": f"quarantined: {error}"}
    status = "done" if n else f"quarantined: no {naming_of(naming).template(modality, 'x')} files in {path}"
    return {"video_id": video_id, "status": status, column: path, count: n}


def summary_line(manifest, skipped=None):
    counts = manifest["status"].str.split(":").str[0].value_counts().to_dict()
    line = (f"annotations: {len(manifest)} videos — {counts.get('ok', 0)} ok, {counts.get('missing', 0)} missing, "
            f"{counts.get('quarantined', 0)} quarantined")
    if len(manifest) > counts.get("ok", 0):
        line += f" (each with its reason in {MISSING_CSV})"
    for name, why in sorted((skipped or {}).items()):
        line += f"\n  not written: {name}: {why}"
    return line


def run_annotations(args):
    index, classes = read_index(args.index)
    manifest = build_manifest(index, read_reports(args.frames_reports), read_reports(args.flow_reports))
    skipped = write_annotations(manifest, classes, args.dataset, args.out_dir, args.naming,
                                args.flow_naming or args.naming)
    print(summary_line(manifest, skipped) + f"\n→ {args.out_dir}")
    return 0


def run_lists(args):
    if not Path(args.frames).is_dir():
        raise UserError(f"--frames {args.frames}: no such directory")
    manifest, classes, with_flow = manifest_from_tree(args.dataset, args.splits, args.frames, args.flow, args.videos,
                                                      args.naming, args.flow_naming, args.class_folders)
    skipped = write_annotations(manifest, classes, args.dataset, args.out, args.naming,
                                args.flow_naming or args.naming, with_videos=args.videos is not None,
                                with_flow=with_flow)
    print(summary_line(manifest, skipped) + f"\n→ {args.out}")
    return 0


def add_naming_arguments(parser):
    parser.add_argument("--naming", choices=sorted(NAMINGS), default="mmaction",
                        help="rgb frame names: img_00001.jpg (mmaction) or image_00001.jpg (3dresnets)")
    parser.add_argument("--flow-naming", choices=sorted(NAMINGS), default=None,
                        help="flow names: flow_x_ (mmaction), x_ (mmaction_k400_flow), image_00001x (3dresnets); "
                             "default: as --naming")


def add_parser(subparsers):
    parser = subparsers.add_parser("annotations", help="manifest + every list/JSON from the index and shard reports",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("index", help="index .parquet from `prep index`")
    parser.add_argument("out_dir")
    parser.add_argument("--frames-reports", nargs="+", required=True, help="CSV reports of the frames shards")
    parser.add_argument("--flow-reports", nargs="+", required=True, help="CSV reports of the flow shards")
    add_naming_arguments(parser)
    parser.set_defaults(func=run_annotations)

    parser = subparsers.add_parser("lists", help="every annotation format for an existing rawframes tree",
                                   description="Every annotation format for a frames tree made by other tools.")
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--splits", required=True, help="the dataset's official split files (Kinetics: the CSVs)")
    parser.add_argument("--frames", required=True, help="rgb root: [class/]video/img_00001.jpg, or video.pack")
    parser.add_argument("--flow", help="flow root if not the frames root: [class/]video/flow_x_00001.jpg …")
    parser.add_argument("--videos", help="video root, to record video paths with their extensions (video lists)")
    parser.add_argument("--out", required=True)
    add_naming_arguments(parser)
    add_class_folders_argument(parser)
    parser.set_defaults(func=run_lists)
