"""HMDB51: classes and splits from ``<class>_test_split{1,2,3}.txt`` (from ``test_train_splits.rar``).

Each line reads ``video.avi N`` with N = 0 (unused), 1 (train) or 2 (test); the official files have trailing spaces,
and copies that went through Windows have CRLF line ends. Classes are the sorted class names (label = position).
Video names contain ``& ( ) ! ' ; , +`` and the like: they are only ever used as path components, never passed
through a shell. The videos come from ``hmdb51_org.rar`` (one RAR per class: ``python -m prep extract --nested``),
laid out as ``<class>/<video>.avi``.
"""
import re
from pathlib import Path

from prep import UserError
from prep.datasets import DatasetIndex, Video

SPLITS = ("1", "2", "3")
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
        name = fields[0].strip()
        if "/" in name or "\\" in name or name in (".", ".."):
            raise UserError(f"{path}: line {number}: {name!r} is not a plain file name")
        entries.append((name, SUBSET_OF_CODE[fields[1]]))
    return entries


def read_splits(split_dir, name="hmdb51", splits=None):
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
                stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
                video_id = f"{cls}/{stem}"
                video = videos.setdefault(video_id, Video(video_id, cls, f"{cls}/{file_name}"))
                video.splits[split] = subset
    for video in videos.values():
        for split in available:
            video.splits.setdefault(split, "unused")
    return DatasetIndex(name, classes, sorted(videos.values(), key=lambda v: v.video_id), list(available))


# where it comes from: hmdb51_org.rar (one <class>.rar per class, each <class>/<video>.avi) and test_train_splits.rar
# (testTrainMulti_7030_splits/<class>_test_split<N>.txt); URLs are in the config (sources.hmdb51.urls)
NESTED_ARCHIVES = True
TOLERATE_MISSING = False  # every archive is needed
VIDEO_EXTENSIONS = (".avi",)


def locate_sources(roots):
    """``(split files, video_dir)`` of an HMDB51 copy under roots (extracted archives or a tree on disk)."""
    from prep.arrange import best_class_tree, walk_dirs

    for folder in walk_dirs(roots):
        if any(SPLIT_FILE.match(p.name) for p in folder.glob("*_test_split*.txt")):
            files = find_split_files(folder)
            classes = sorted({cls for cls, _ in files})
            return sorted(files.values()), best_class_tree(roots, VIDEO_EXTENSIONS, classes, "HMDB51")
    raise UserError(f"HMDB51: no <class>_test_split<N>.txt files (test_train_splits.rar) found under "
                    f"{', '.join(map(str, roots)) or 'nothing'}")
