"""HMDB51: classes and splits from ``<class>_test_split{1,2,3}.txt`` (from ``test_train_splits.rar``).

Each line reads ``video.avi N`` with N = 0 (unused), 1 (train) or 2 (test); the official files have trailing spaces,
and copies that went through Windows have CRLF line ends. Classes are the sorted class names (label = position).
Video names contain ``& ( ) ! ' ; , +`` and the like: they are only ever used as path components, never passed
through a shell. The videos come from ``hmdb51_org.rar`` (one RAR per class: ``python -m prep extract --nested``),
laid out as ``<class>/<video>.avi``.
"""
import functools
import re
from pathlib import Path

from prep.base.errors import UserError
from prep.base.names import safe_component
from prep.base.sources import best_class_tree, walk_dirs
from prep.datasets import (Arrangement, DatasetFacts, SourceList, add_listed_video, class_folder_videos,
                           dataset_index, locate_class_folder_videos, split_list_name)
SUBSET_OF_CODE = {"0": "unused", "1": "train", "2": "test"}
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[1-9])\.txt$")


def find_split_files(split_dir):
    """``{(class, split): path}`` for the split files in split_dir, or one folder level below it
    (``test_train_splits.rar`` extracts into ``testTrainMulti_7030_splits/``)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise UserError(f"{split_dir}: HMDB51 split directory not found")
    for candidates in (sorted(split_dir.glob("*_test_split*.txt")), sorted(split_dir.glob("*/*_test_split*.txt"))):
        found = {}
        for path in candidates:
            match = SPLIT_FILE.match(path.name)
            if not match:
                continue
            key = (match.group("cls"), match.group("split"))
            if key in found:
                raise UserError(f"{split_dir}: two split files for class {key[0]!r} split {key[1]}: "
                                f"{found[key]} and {path}")
            found[key] = path
        if found:
            return found
    raise UserError(f"{split_dir}: no <class>_test_split<N>.txt files found (HMDB51 split files)")


def read_split_file(path):
    """``[(video file name, subset)]`` of one split file, in file order."""
    entries = []
    text = Path(path).read_text(encoding="utf-8-sig", errors="strict")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = line.rsplit(None, 1)
        if len(fields) != 2 or fields[1] not in SUBSET_OF_CODE:
            raise UserError(f"{path}: line {number}: expected 'video.avi 0|1|2', got {line!r}")
        name = safe_component(fields[0].strip(), f"{path}: line {number}")
        entries.append((name, SUBSET_OF_CODE[fields[1]]))
    return entries


def read_index(split_dir, name="hmdb51", splits=None):
    """Read every ``<class>_test_split<N>.txt``; return a :class:`DatasetIndex` with classes sorted by name.

    video_id is ``class/video`` (file name without extension), path ``class/video.avi``, and
    ``splits[N]`` is "train", "test" or "unused" (also "unused" for a video a split file does not list).
    """
    files = find_split_files(split_dir)
    classes = sorted({cls for cls, _ in files})
    available = sorted({split for _, split in files}, key=int)
    if splits is not None:
        wanted = [str(s) for s in splits]
        absent = [s for s in wanted if s not in available]
        if absent:
            raise UserError(f"{split_dir}: no split files for split(s) {', '.join(absent)}")
        available = wanted
    for cls in classes:
        absent = [s for s in available if (cls, s) not in files]
        if absent:
            raise UserError(f"{split_dir}: class {cls!r} has no split file for split(s) {', '.join(absent)} "
                            f"(expected {cls}_test_split{absent[0]}.txt)")
    videos = {}
    for cls in classes:
        for split in available:
            path = files[(cls, split)]
            seen = set()
            for file_name, subset in read_split_file(path):
                if file_name in seen:
                    raise UserError(f"{path}: {file_name!r} is listed twice")
                seen.add(file_name)
                add_listed_video(videos, cls, file_name, split, subset, str(path))
    return dataset_index(name, classes, videos, available)


locate_videos = locate_class_folder_videos
list_name = functools.partial(split_list_name, "hmdb51")


def json_name(split, subset):
    return f"hmdb51_{split}.json"  # 3D-ResNets' hmdb51_1.json: both subsets of a split


# where it comes from: hmdb51_org.rar (one <class>.rar per class, each <class>/<video>.avi) and test_train_splits.rar
# (testTrainMulti_7030_splits/<class>_test_split<N>.txt), every archive needed; stored as UCF101 is (half its size)
FACTS = DatasetFacts(
    name="hmdb51",
    videos=6766,
    sources={"urls": SourceList(("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
                                 "http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar"),
                                "the video archive (one RAR per class inside) and the split files' archive")},
    nested_archives=True,
    frame_size={"short_side": None},
)


def arrange_sources(roots, files=()):
    """An HMDB51 copy under roots (extracted archives or a tree on disk): its split files, and every video of the
    folder whose sub-folders are the classes."""
    for folder in walk_dirs(roots):
        if any(SPLIT_FILE.match(p.name) for p in folder.glob("*_test_split*.txt")):
            files = find_split_files(folder)
            classes = sorted({cls for cls, _ in files})
            video_dir = best_class_tree(roots, FACTS.video_extensions, classes, "HMDB51")
            return Arrangement(sorted(files.values()), class_folder_videos(video_dir, FACTS.video_extensions), {},
                               f"splits from {folder}, videos from {video_dir}")
    raise UserError(f"HMDB51: no <class>_test_split<N>.txt files (test_train_splits.rar) found under "
                    f"{', '.join(map(str, roots)) or 'nothing'}")
