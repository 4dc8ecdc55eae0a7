"""UCF101: classes from ``classInd.txt``, splits from ``trainlist0N.txt`` / ``testlist0N.txt``.

The official files use CRLF line ends; classInd says ``HandstandPushups`` while the files are
``v_HandStandPushups_*``, so class names are matched case-insensitively. The synthetic dataset writes the same
files, so this reader serves both.
"""
import os
from pathlib import Path

from prep import UserError
from prep.datasets import DatasetIndex, Video

SPLITS = ("1", "2", "3")


def read_lines(path):
    """Non-empty, stripped lines of a text file with LF or CRLF line ends."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_class_index(split_dir):
    path = Path(split_dir) / "classInd.txt"
    if not path.is_file():
        raise UserError(f"{path}: missing (UCF101-style class index, lines '1 ClassName')")
    classes = []
    for number, line in enumerate(read_lines(path), start=1):
        index, _, name = line.partition(" ")
        if not index.isdigit() or int(index) != number or not name:
            raise UserError(f"{path}: line {number} should read '{number} ClassName', got {line!r}")
        classes.append(name.strip())
    return classes


def read_splits(split_dir, name="ucf101", splits=None):
    """Read classInd and every available train/test list; return a :class:`DatasetIndex`."""
    split_dir = Path(split_dir)
    classes = read_class_index(split_dir)
    by_lower = {c.lower(): c for c in classes}
    videos = {}
    available = [s for s in (splits or SPLITS) if (split_dir / f"trainlist0{s}.txt").is_file()]
    if not available:
        raise UserError(f"{split_dir}: no trainlist0N.txt found (expected UCF101-style split files)")
    for split in available:
        for subset, list_name in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
            list_path = split_dir / list_name
            if not list_path.is_file():
                raise UserError(f"{list_path}: missing (split {split} has a train list but no test list)")
            for number, line in enumerate(read_lines(list_path), start=1):
                rel_path = line.split(" ")[0].replace("\\", "/")
                class_part = rel_path.split("/")[0]
                class_name = by_lower.get(class_part.lower())
                if class_name is None or "/" not in rel_path:
                    raise UserError(f"{list_path}: line {number}: {rel_path!r} is not '<class>/<video>' "
                                    f"with a class from classInd.txt")
                video_id = f"{class_name}/{os.path.splitext(rel_path.split('/', 1)[1])[0]}"
                video = videos.setdefault(video_id, Video(video_id, class_name, f"{class_name}/{rel_path.split('/', 1)[1]}"))
                video.splits[split] = subset
    for video in videos.values():
        for split in available:
            video.splits.setdefault(split, "unused")
    return DatasetIndex(name, classes, sorted(videos.values(), key=lambda v: v.video_id), list(available))


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


# where it comes from: UCF101.rar (UCF-101/<Class>/v_*.avi) and UCF101TrainTestSplits-RecognitionTask.zip
# (ucfTrainTestlist/classInd.txt, trainlist0N.txt, testlist0N.txt); URLs are in the config (sources.ucf101.urls)
NESTED_ARCHIVES = False
TOLERATE_MISSING = False  # every archive is needed
VIDEO_EXTENSIONS = (".avi",)


def locate_sources(roots):
    """``(split files, video_dir)`` of a UCF101 copy under roots (extracted archives or a tree on disk):
    the folder holding classInd.txt and trainlist01.txt, and the folder whose sub-folders are the classes."""
    from prep.arrange import best_class_tree, walk_dirs

    for folder in walk_dirs(roots):
        if (folder / "classInd.txt").is_file() and (folder / "trainlist01.txt").is_file():
            split_files = [p for p in sorted(folder.iterdir()) if p.is_file()
                           and (p.name == "classInd.txt" or p.name.startswith(("trainlist0", "testlist0")))]
            classes = read_class_index(folder)
            return split_files, best_class_tree(roots, VIDEO_EXTENSIONS, classes, "UCF101")
    raise UserError(f"UCF101: no ucfTrainTestlist (classInd.txt with trainlist01.txt) found under "
                    f"{', '.join(map(str, roots)) or 'nothing'}")
