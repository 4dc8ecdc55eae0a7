"""The datasets: one module per dataset, pure facts and parsers, importing only :mod:`prep.base`.

:data:`DATASETS` is the one registry of dataset names (spelled in :mod:`prep.base.names`, where train's recipes
can read it too): the config schema (checked by a test), ``common.smk`` (wildcards, real datasets, list names) and
every CLI take it from here. Each dataset module has the same interface,
so the stages hold no rule of their own about a dataset:

- ``read_index(splits_dir) -> DatasetIndex``: classes (label = position) and videos with their split membership
  (``read_index(splits_dir, class_folders=form)`` when ``FACTS.class_folders``);
- ``locate_videos(index, video_dir) -> (found, missing)``: ``{video_id: Path}`` of the videos on disk and
  ``{video_id: reason}`` of the others;
- ``arrange_sources(roots, files) -> Arrangement``: where a copy's split files and videos are, in extracted
  archives or a tree on disk (``prep arrange``);
- ``list_name(split, subset)`` and ``json_name(split, subset)``: annotation file names;
- ``FACTS``: a :class:`DatasetFacts` (how its archives and sources are to be handled).
"""
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from prep.base.errors import UserError
from prep.base.index_file import INDEX_COLUMNS
from prep.base.names import DATASET_NAMES, safe_component

DATASETS = DATASET_NAMES  # one module per name under prep/datasets/
REAL_DATASETS = tuple(name for name in DATASETS if name != "synthetic")  # downloaded; synthetic is generated
SPLITS = ("1", "2", "3")


@dataclass
class Video:
    """One video of a dataset, as its official annotation files describe it."""

    video_id: str  # relative path without extension, unique: "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"
    class_name: str
    path: str  # relative path of the video file under the dataset's video directory, with extension
    splits: dict = field(default_factory=dict)  # split name ("1", "2", …) -> "train" | "test" | "unused"


@dataclass
class DatasetIndex:
    """Classes in label order (label = position) and the videos with their split membership."""

    name: str
    classes: list
    videos: list
    split_names: list

    def label_of(self, class_name):
        return self.classes.index(class_name)


@dataclass(frozen=True)
class DatasetFacts:
    """How a dataset's sources are handled; a dataset states only where it differs from these defaults."""

    nested_archives: bool = False  # archives inside archives, extracted too (HMDB51: one RAR per class)
    tolerate_missing: bool = False  # a failed download or archive only makes videos missing (Kinetics)
    source_lists: tuple = ()  # `sources:` keys always fetched besides the archives (Kinetics: the CSVs)
    link_lists: str = None  # a `sources:` key naming lists of archive URLs, one a line (PaddleVideo's)
    video_extensions: tuple = (".avi",)
    class_folders: bool = False  # class folders made from labels in a chosen form (Kinetics), not the dataset's own


@dataclass
class Arrangement:
    """Where a dataset's copy stands: its split / annotation files, ``(source file, relative target)`` of every
    video, ``{video_id: reason}`` notes that say more than "not found", and a line for the log."""

    split_files: list
    videos: list
    notes: dict
    where: str


def add_listed_video(videos, class_name, file_name, split, subset, where):
    """A split file lists ``class_name/file_name`` in ``subset`` of ``split``: its :class:`Video` (id
    ``class/stem``) is added to ``{video_id: Video}`` (see :func:`add_video`) and marked."""
    video_id = f"{class_name}/{os.path.splitext(file_name)[0]}"
    video = add_video(videos, Video(video_id, class_name, f"{class_name}/{file_name}"), where)
    video.splits[split] = subset


def dataset_index(name, classes, videos, split_names):
    """The :class:`DatasetIndex` of ``{video_id: Video}``: sorted by id, "unused" where a split does not list one."""
    for video in videos.values():
        for split in split_names:
            video.splits.setdefault(split, "unused")
    return DatasetIndex(name, classes, sorted(videos.values(), key=lambda v: v.video_id), list(split_names))


def check_dataset(dataset):
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    return dataset


def dataset_module(dataset):
    """The module of a dataset (``prep.datasets.<name>``), with the interface above."""
    return importlib.import_module(f"{__name__}.{check_dataset(dataset)}")


def read_dataset(dataset, splits_dir, class_folders="mmaction2"):
    """The :class:`DatasetIndex` of ``dataset`` from its official split / annotation files in ``splits_dir``;
    ``class_folders``: the class-folder form of a dataset whose labels are not folder names (``FACTS.class_folders``:
    Kinetics, :data:`prep.datasets.kinetics400.CLASS_FOLDER_FORMS`), ignored by the others (their classes are
    folders)."""
    module = dataset_module(dataset)
    if module.FACTS.class_folders:
        return module.read_index(splits_dir, class_folders=class_folders)
    return module.read_index(splits_dir)


def split_list_name(dataset, split, subset):
    """mmaction2's list names of a dataset with three official splits: ``{dataset}_{train|val}_split_{k}``."""
    return f"{dataset}_{'val' if subset == 'test' else subset}_split_{split}"


def list_name(dataset, split, subset):
    """The annotation list name of ``dataset`` for ``split`` and ``subset`` (``train`` / ``test``)."""
    return dataset_module(dataset).list_name(str(split), subset)


def add_video(videos, video, where):
    """Put ``video`` into ``{video_id: Video}``; two files with one stem in one class share a video id (their
    frames would share a folder), an error naming both."""
    safe_component(video.class_name, where)
    known = videos.get(video.video_id)
    if known is not None and known.path != video.path:
        raise UserError(f"{where}: {known.path!r} and {video.path!r} have the same video id {video.video_id!r} "
                        "(frames and lists name a video without its extension): rename or remove one")
    return videos.setdefault(video.video_id, video)


def resolve_video_path(video_dir, rel_path):
    """The file for ``class/video.ext`` under video_dir, matching the class directory case-insensitively."""
    video_dir = Path(video_dir)
    direct = video_dir / rel_path
    if direct.exists():
        return direct
    class_part, file_part = rel_path.split("/", 1)
    if video_dir.is_dir():
        for entry in os.scandir(video_dir):
            if entry.is_dir() and entry.name.lower() == class_part.lower():
                candidate = Path(entry.path) / file_part
                if candidate.exists():
                    return candidate
    return direct


def locate_class_folder_videos(index, video_dir):
    """``({video_id: Path}, {video_id: reason})``: each listed video at ``video_dir/class/video.ext``, class folders
    matched case-insensitively (UCF101's ``HandstandPushups``); reasons ``not found`` and ``empty file``."""
    found, missing = {}, {}
    for video in index.videos:
        path = resolve_video_path(video_dir, video.path)
        if not path.is_file():
            missing[video.video_id] = "not found"
        elif path.stat().st_size == 0:
            missing[video.video_id] = "empty file"
        else:
            found[video.video_id] = path
    return found, missing


def class_folder_videos(video_dir, extensions):
    """``(file, "class/file")`` of every video in the class folders of video_dir; two files with one stem in one
    class would share a video id: an error naming both."""
    videos, stems = [], {}
    for class_dir in sorted(p for p in Path(video_dir).iterdir() if p.is_dir()):
        for video in sorted(class_dir.iterdir()):
            if video.is_file() and video.name.lower().endswith(extensions):
                stem = f"{class_dir.name}/{video.name.rsplit('.', 1)[0]}"
                if stem in stems:
                    raise UserError(f"{stems[stem]} and {video} have one video id ({stem!r}): keep one")
                stems[stem] = video
                videos.append((video, f"{class_dir.name}/{video.name}"))
    return videos


def build_index(dataset, splits_dir, video_dir, class_folders="mmaction2"):
    """The index of a dataset's copy: a DataFrame with one row per video (columns INDEX_COLUMNS + split_<name>;
    status ``ok`` or ``missing: <reason>``), and the class list; ``class_folders``: see :func:`read_dataset`."""
    import pandas as pd  # not at import time: common.smk imports this package for its names

    index = read_dataset(dataset, splits_dir, class_folders)
    video_dir = Path(video_dir)
    found, missing = dataset_module(dataset).locate_videos(index, video_dir)
    rows = []
    for video in index.videos:
        path = found.get(video.video_id)
        row = {"video_id": video.video_id, "class_name": video.class_name, "label": index.label_of(video.class_name),
               "video_path": path.relative_to(video_dir).as_posix() if path else video.path,
               "status": "ok" if path else f"missing: {missing[video.video_id]}"}
        row.update({f"split_{name}": video.splits.get(name, "unused") for name in index.split_names})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=INDEX_COLUMNS + [f"split_{n}" for n in index.split_names])
    return frame, index.classes
