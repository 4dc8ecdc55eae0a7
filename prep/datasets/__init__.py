"""The datasets: one module per dataset, pure facts and parsers, importing only :mod:`prep.base`.

:data:`DATASETS` is the registry: one line per dataset, each the name of a module ``prep/datasets/<name>.py``. The
config schema (:mod:`prep.datasets.schema` fills its dataset enums, ``storage`` / ``sources`` keys and their
defaults), ``common.smk`` (wildcards, real datasets, storage, job sizes, frame sizes, list names) and every CLI take
the datasets from here, so a new dataset is its module plus one registry line. Each dataset module has the same
interface, so the stages hold no rule of their own about a dataset:

- ``FACTS``: its :class:`DatasetFacts` — everything else the pipeline knows about it (sources and URLs, archive
  layout, default storage, size and so job sizes, frame size, video extensions, class-folder forms, quirks);
- ``read_index(splits_dir) -> DatasetIndex``: classes (label = position) and videos with their split membership
  (``read_index(splits_dir, class_folders=form)`` when ``FACTS.class_folders``);
- ``locate_videos(index, video_dir) -> (found, missing)``: ``{video_id: Path}`` of the videos on disk and
  ``{video_id: reason}`` of the others;
- ``arrange_sources(roots, files) -> Arrangement`` (downloaded datasets): where a copy's split files and videos are,
  in extracted archives or a tree on disk (``prep arrange``);
- ``list_name(split, subset)`` and ``json_name(split, subset)``: annotation file names;
- ``class_folder_variants(class_name)`` (optional): the folder names copies of it use for a class (default: its name).
"""
import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from prep.base.errors import UserError
from prep.base.frame_source import STORAGES  # how a dataset's rgb is stored: the one storage vocabulary
from prep.base.index_file import INDEX_COLUMNS
from prep.base.names import safe_component

# the registry: one line per dataset (its module is prep/datasets/<name>.py)
DATASETS = (
    "synthetic",
    "ucf101",
    "hmdb51",
    "kinetics400",
)
SPLITS = ("1", "2", "3")
PREP_STAGES = ("frames", "reencode", "flow")
# a job's share of a stage, at full size: ~1000 videos decode in a few core-hours; TV-L1 takes ~3 core-minutes per
# UCF101 video, so ~250 videos (~10 core-hours) make a sensible SLURM job on 8 cores
VIDEOS_PER_JOB = {"frames": 1000, "reencode": 1000, "flow": 250}
WORKERS_PER_JOB = {"frames": 4, "reencode": 4, "flow": 8}
# fewest jobs, so a small dataset still keeps a laptop's cores busy (the synthetic default: 2 frames, 4 flow jobs)
MIN_JOBS = {"frames": 2, "reencode": 2, "flow": 4}
SMALL_DATASET = 1000  # videos; below this a job is one process (start-up would outweigh the work)


@dataclass(frozen=True)
class SourceList:
    """One ``sources.<dataset>.<key>`` setting: its default URLs (or paths) and what they are."""

    default: tuple
    description: str


@dataclass(frozen=True)
class DatasetFacts:
    """Everything the pipeline knows about a dataset besides its parsers; a dataset states only where it differs."""

    name: str
    videos: int  # videos in a full copy: the job sizes follow from it (prep_jobs)
    # `sources.<name>` lists (downloaded datasets): `urls` (archives), and any a dataset adds (Kinetics' CSVs)
    sources: dict = field(default_factory=dict)
    max_missing_fraction: float = 0.0  # default share of the listed videos that may be absent
    nested_archives: bool = False  # archives inside archives, extracted too (HMDB51: one RAR per class)
    tolerate_missing: bool = False  # a failed download or archive only makes videos missing (Kinetics)
    source_lists: tuple = ()  # `sources:` keys always fetched besides the archives (Kinetics: the CSVs)
    link_lists: str = None  # a `sources:` key naming lists of archive URLs, one a line (PaddleVideo's)
    storage: str = "frames"  # default rgb storage, one of STORAGES (config `storage:` overrides)
    # the frame size its recipes assume (config `frames.datasets.<name>` overrides): {"short_side": n} or
    # {"size": "WxH"}; {"short_side": None} = as decoded; None = no assumption (config `frames.short_side`)
    frame_size: dict = None
    video_extensions: tuple = (".avi",)
    # class folders made from labels in one of these forms (Kinetics: mmaction2, label), not the dataset's own
    class_folders: tuple = ()
    # TV-L1 parameters its flow uses besides OpenCV's defaults (prep.base.optical_flow.TVL1_PARAMETERS; config
    # `flow.tvl1` overrides): the real datasets use OpenCV's, as denseflow and mmaction2's tools do
    tvl1: dict = field(default_factory=dict)

    @property
    def generated(self):
        """Made by the pipeline itself (synthetic), never downloaded."""
        return not self.sources

    def prep_jobs(self, stage):
        """``{"shards": Snakemake jobs, "workers": cores per job}`` of a prep stage, sized from :attr:`videos`: the
        power of two nearest :data:`VIDEOS_PER_JOB` videos a job (at least :data:`MIN_JOBS`)."""
        shards = 2 ** max(0, round(math.log2(max(self.videos, 1) / VIDEOS_PER_JOB[stage])))
        workers = 1 if self.videos < SMALL_DATASET else WORKERS_PER_JOB[stage]
        return {"shards": max(MIN_JOBS[stage], shards), "workers": workers}


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


def facts(dataset):
    """The :class:`DatasetFacts` of ``dataset``."""
    return dataset_module(dataset).FACTS


def real_datasets():
    """The datasets that are downloaded (not generated), in registry order."""
    return tuple(name for name in DATASETS if not facts(name).generated)


def class_folder_forms():
    """Every class-folder form some dataset makes (``--class-folders``, config ``frames.class_folders``)."""
    return tuple(dict.fromkeys(form for name in DATASETS for form in facts(name).class_folders))


def add_class_folders_argument(parser):
    """The stages' ``--class-folders`` option (``prep index``, ``prep lists``)."""
    forms = class_folder_forms()
    parser.add_argument("--class-folders", choices=forms, default=forms[0],
                        help="class folders of a dataset whose labels are not folder names (Kinetics): mmaction2 "
                             "(spaces as _, what whitespace-split lists need; default) or label (as 3D-ResNets / "
                             "MindSpore-I3D join root/label/video)")


def class_folder_variants(dataset, class_name):
    """The folder names copies of ``dataset`` use for ``class_name`` (the module's ``class_folder_variants``;
    default: the name itself)."""
    variants = getattr(dataset_module(dataset), "class_folder_variants", None)
    return variants(class_name) if variants else [class_name]


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
