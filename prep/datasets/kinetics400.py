"""Kinetics-400: classes and clips from the official CSVs; PaddleVideo's archive link lists; finding the clips.

CSV columns: ``label,youtube_id,time_start,time_end,split`` (``split`` is train / val / test; the original test CSV
has no label column). Labels are kept exactly as written (they contain spaces, quotes, parentheses) and sorted by
name, as mmaction2 does (label = position in ``classes``). A clip is ``{youtube_id}_{start:06d}_{end:06d}.mp4``;
``Video.path`` is ``<folder>/<clip>.mp4`` and ``video_id`` the same without extension, where the class folder is
one of :data:`CLASS_FOLDER_FORMS`: ``mmaction2`` (the default: mmaction2's rename script's form, spaces → ``_``, so
that no path in a whitespace-split list holds a space) or ``label`` (the label as is: 3D-ResNets and MindSpore-I3D
join ``root/<label>/<video>`` from their JSON's label). Label map and JSONs keep the real names either way.

Kinetics has one official split; it is split "1" in :class:`~prep.datasets.DatasetIndex`: CSV ``train`` → "train",
``val`` → "test" (the validation set is what results are reported on), labelled ``test`` rows → "unused" when
``include_test`` is set, otherwise skipped, as are rows without a label.

Every copy of Kinetics lacks some 5–10 % of the clips: :func:`locate_videos` finds the clips present under a video
directory (in class folders — any of :func:`class_folder_variants` — or flat; ``.mp4``, ``.mkv`` or ``.webm``) and reports the others with a reason.
"""
import csv
import os
from pathlib import Path

from prep.base.errors import UserError
from prep.base.names import safe_component
from prep.datasets import Arrangement, DatasetFacts, SourceList, Video, dataset_index

SUBSET_OF_SPLIT = {"train": "train", "val": "test", "validate": "test", "validation": "test", "test": "unused"}
CLIP_EXTENSIONS = (".mp4", ".mkv", ".webm")
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")


def clip_name(youtube_id, time_start, time_end, extension=".mp4"):
    """``abc_000010_000020.mp4`` for youtube_id abc, 10 s to 20 s."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}{extension}"


def _csv_files(csv_dir_or_files):
    if isinstance(csv_dir_or_files, (str, os.PathLike)):
        path = Path(csv_dir_or_files)
        if path.is_dir():
            files = sorted(path.glob("*.csv"))
            if not files:
                raise UserError(f"{path}: no .csv annotation files found (Kinetics-400 train.csv, validate.csv …)")
            return files
        items = [path]
    else:
        items = [Path(p) for p in csv_dir_or_files]
    for path in items:
        if not path.is_file():
            raise UserError(f"{path}: Kinetics annotation CSV not found")
    return items


def _seconds(value, path, number, column):
    try:
        number_value = float(value)
    except ValueError:
        raise UserError(f"{path}: line {number}: {column} {value!r} is not a number") from None
    if number_value < 0 or number_value != int(number_value):
        raise UserError(f"{path}: line {number}: {column} {value!r} is not a whole number of seconds")
    return int(number_value)


def read_rows(path):
    """``[(label or None, youtube_id, start, end, split)]`` of one CSV (split from the column, else the file name)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise UserError(f"{path}: not a Kinetics CSV: no column(s) {', '.join(missing)} "
                            f"(expected label,youtube_id,time_start,time_end,split)")
        reader.fieldnames = header
        default_split = path.stem.lower()
        rows = []
        for number, row in enumerate(reader, start=2):
            if None in row or any(row.get(c) is None for c in REQUIRED_COLUMNS):
                raise UserError(f"{path}: line {number}: wrong number of fields")
            split = (row.get("split") or default_split).strip().lower()
            if split not in SUBSET_OF_SPLIT:
                raise UserError(f"{path}: line {number}: unknown split {split!r} (train, val or test)")
            label = row.get("label")
            youtube_id = row["youtube_id"].strip()
            safe_component(youtube_id, f"{path}: line {number}: youtube_id")
            start = _seconds(row["time_start"].strip(), path, number, "time_start")
            end = _seconds(row["time_end"].strip(), path, number, "time_end")
            rows.append((label if label else None, youtube_id, start, end, split))
    return rows


def mmaction2_class_folder(label):
    """mmaction2's folder for a label: ``echo $class | tr " " "_"`` (open-mmlab/mmaction2
    tools/data/kinetics/rename_classnames.sh, 1.x): the unquoted echo collapses runs of whitespace, then each space
    becomes ``_``; parentheses, quotes and apostrophes stay (mmaction2's list readers split on whitespace only)."""
    return "_".join(label.split())


CLASS_FOLDER_FORMS = {"mmaction2": mmaction2_class_folder, "label": lambda label: label}


def class_folder(label, form="mmaction2"):
    """The class folder of ``label`` in one of :data:`CLASS_FOLDER_FORMS`."""
    if form not in CLASS_FOLDER_FORMS:
        raise UserError(f"unknown Kinetics class-folder form {form!r} (known: {', '.join(CLASS_FOLDER_FORMS)})")
    return CLASS_FOLDER_FORMS[form](label)


def read_index(csv_dir_or_files, name="kinetics400", include_test=False, class_folders="mmaction2"):
    """Read the Kinetics CSVs (a directory of them, one file, or a list of files); return a DatasetIndex whose
    video ids and paths use the class-folder form ``class_folders``."""
    class_folder("", class_folders)  # an unknown form fails before any file is read
    videos = {}
    for path in _csv_files(csv_dir_or_files):
        for label, youtube_id, start, end, split in read_rows(path):
            subset = SUBSET_OF_SPLIT[split]
            if label is None or (subset == "unused" and not include_test):
                continue
            safe_component(label, f"{path}: label")
            folder = safe_component(class_folder(label, class_folders), f"{path}: label {label!r} as a class folder")
            clip = clip_name(youtube_id, start, end)
            video_id = f"{folder}/{clip[:-len('.mp4')]}"
            video = videos.get(video_id)
            if video is None:
                videos[video_id] = Video(video_id, label, f"{folder}/{clip}", {"1": subset})
            elif video.splits["1"] != subset and "unused" not in (video.splits["1"], subset):
                raise UserError(f"{path}: clip {video_id!r} is in both {video.splits['1']} and {subset}")
    if not videos:
        raise UserError(f"{csv_dir_or_files}: no labelled clips found")
    classes = sorted({v.class_name for v in videos.values()})
    by_folder = {}
    for label in classes:
        other = by_folder.setdefault(class_folder(label, class_folders), label)
        if other != label:
            raise UserError(f"{csv_dir_or_files}: labels {other!r} and {label!r} share the class folder "
                            f"{class_folder(label, class_folders)!r} ({class_folders} form)")
    return dataset_index(name, classes, videos, ["1"])


def class_folder_variants(label):
    """Folder names a copy of Kinetics may use for a label: as is, mmaction2's 1.x ``rename_classnames.sh`` form
    (spaces as ``_``), and its 0.x form (also ``(`` and ``)`` as ``-``)."""
    underscored = mmaction2_class_folder(label)
    return list(dict.fromkeys([label, underscored, underscored.replace("(", "-").replace(")", "-")]))


def _scan(video_dir):
    """``{file name: [paths]}`` of the files directly in video_dir and in its sub-folders (one level)."""
    by_name = {}
    with os.scandir(video_dir) as top:
        for entry in top:
            if entry.is_file():
                by_name.setdefault(entry.name, []).append(Path(entry.path))
            elif entry.is_dir():
                with os.scandir(entry.path) as inner:
                    for item in inner:
                        if item.is_file():
                            by_name.setdefault(item.name, []).append(Path(item.path))
    return by_name


def locate_videos(index, video_dir):
    """Find each clip of index under video_dir. Returns ``(found, missing)``: ``{video_id: Path}`` and
    ``{video_id: reason}`` with reason "not found" or "empty file: <path>".

    A clip may stand in its class folder (see :func:`class_folder_variants`) or flat in video_dir, as
    ``.mp4``, ``.mkv`` or ``.webm``; the class folder wins over a flat copy, .mp4 over the others.
    """
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise UserError(f"{video_dir}: video directory not found")
    by_name = _scan(video_dir)
    found, missing = {}, {}
    for video in index.videos:
        stem = video.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        folders = set(class_folder_variants(video.class_name))
        candidates = []
        for extension in CLIP_EXTENSIONS:
            paths = by_name.get(stem + extension, [])
            candidates += [p for p in paths if p.parent != video_dir and p.parent.name in folders]
        for extension in CLIP_EXTENSIONS:
            candidates += [p for p in by_name.get(stem + extension, []) if p.parent == video_dir]
        if not candidates:
            missing[video.video_id] = "not found"
            continue
        nonempty = [p for p in candidates if p.stat().st_size > 0]
        if nonempty:
            found[video.video_id] = nonempty[0]
        else:
            missing[video.video_id] = f"empty file: {candidates[0]}"
    return found, missing


# where it comes from: the annotation CSVs (DeepMind's kinetics400.tar.gz: train.csv, validate.csv, test.csv), fetched
# even when the clips are on disk, and the clips: PaddleVideo's link lists (train_link.list, val_link.list) of tar.gz
# archives of class folders of clips, or a copy on disk (class folders or flat). Every copy lacks some clips: a failed
# archive only makes clips missing, counted against max_missing_fraction. How it is stored: ~135 GB of mp4 would be
# ~2 TB of JPEG frames, so rgb is re-encoded for training from video, at mmaction2's "short-side 256" (its
# "340x256" rows: config frames.datasets.kinetics400 {size: 340x256}); ~260 000 clips (the CSVs' labelled rows).
FACTS = DatasetFacts(
    name="kinetics400",
    videos=260000,
    sources={
        "annotations": SourceList(("https://storage.googleapis.com/deepmind-media/Datasets/kinetics400.tar.gz",),
                                  "the CSVs (label,youtube_id,time_start,time_end,split), or archives of them; URLs "
                                  "or paths"),
        "link_lists": SourceList(("https://ai-rank.bj.bcebos.com/Kinetics400/train_link.list",
                                  "https://ai-rank.bj.bcebos.com/Kinetics400/val_link.list"),
                                 "PaddleVideo-style lists of clip archive URLs (tar.gz of class folders), one a line"),
        "urls": SourceList((), "more clip archive URLs"),
    },
    max_missing_fraction=0.15,
    tolerate_missing=True,
    source_lists=("annotations",),
    link_lists="link_lists",
    storage="videos",
    frame_size={"short_side": 256},
    video_extensions=CLIP_EXTENSIONS,
    class_folders=tuple(CLASS_FOLDER_FORMS),
)


def list_name(split, subset):
    """mmaction2's ``kinetics400_{train|val}_list`` (one official split)."""
    return f"kinetics400_{'val' if subset == 'test' else subset}_list"


def json_name(split, subset):
    return "kinetics400.json"  # one split: one file with both subsets, as 3D-ResNets takes one annotation file


def find_csvs(roots, files=()):
    """Kinetics CSVs among files and under roots (any depth), by name order; files that are not Kinetics CSVs
    (no youtube_id,time_start,time_end columns) are left out."""
    candidates = [Path(f) for f in files if str(f).lower().endswith(".csv")]
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            candidates += [Path(folder) / n for n in sorted(names) if n.lower().endswith(".csv")]
    found = []
    for path in candidates:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = [h.strip() for h in next(csv.reader(handle), [])]
        if all(column in header for column in REQUIRED_COLUMNS):
            found.append(path)
    return found


def scan_clips(roots):
    """``{clip stem: [paths]}`` of every clip file (.mp4, .mkv, .webm) under roots, at any depth."""
    by_stem = {}
    for root in roots:
        for folder, _dirs, names in os.walk(root, followlinks=True):
            for name in names:
                stem, dot, extension = name.rpartition(".")
                if dot and f".{extension.lower()}" in CLIP_EXTENSIONS:
                    by_stem.setdefault(stem, []).append(Path(folder) / name)
    return by_stem


def pick_clip(video, by_stem):
    """The best file for a video among the scanned clips: in a class folder of its label, non-empty, .mp4 first;
    None when there is none."""
    stem = video.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    paths = by_stem.get(stem, [])
    folders = set(class_folder_variants(video.class_name))
    rank = {extension: i for i, extension in enumerate(CLIP_EXTENSIONS)}
    paths = sorted(paths, key=lambda p: (p.parent.name not in folders, p.stat().st_size == 0,
                                         rank.get(p.suffix.lower(), 9), str(p)))
    return paths[0] if paths else None


def arrange_sources(roots, files=()):
    """A Kinetics-400 copy: the CSVs among files or under roots, and each labelled clip found by name (in a class
    folder of its label in any spelling, or flat, at any depth) as ``folder/clip.ext`` under the index's class
    folder (mmaction2's form); notes name empty files."""
    csvs = find_csvs(roots, files)
    if not csvs:
        raise UserError("Kinetics-400: no annotation CSV (label,youtube_id,time_start,time_end,split) found; "
                        "set sources.kinetics400.annotations")
    index = read_index(csvs)
    by_stem = scan_clips(roots)
    videos, notes = [], {}
    for video in index.videos:
        path = pick_clip(video, by_stem)
        if path is not None and path.stat().st_size == 0:
            notes[video.video_id] = f"empty file: {path}"
        elif path is not None:
            videos.append((path, f"{video.video_id}{path.suffix.lower()}"))
    return Arrangement(csvs, videos, notes, f"{len(csvs)} CSVs, {sum(len(p) for p in by_stem.values())} clip "
                                            "files found")
