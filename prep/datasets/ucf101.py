"""UCF101: classes from ``classInd.txt``, splits from ``trainlist0N.txt`` / ``testlist0N.txt``.

The official files use CRLF line ends; classInd says ``HandstandPushups`` while the files are
``v_HandStandPushups_*``, so class names are matched case-insensitively. The synthetic dataset writes the same
files, so this reader serves both.
"""
import os
from pathlib import Path

from prep.base.errors import UserError
from prep.base.names import safe_relative
from prep.base.sources import best_class_tree, walk_dirs
from prep.datasets import (SPLITS, Arrangement, DatasetIndex, Video, add_video, class_folder_videos,
                           split_list_name)


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


def read_index(split_dir, name="ucf101", splits=None):
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
                where = f"{list_path}: line {number}"
                rel_path = safe_relative(line.split(" ")[0], where)
                class_part, _, file_name = rel_path.partition("/")
                class_name = by_lower.get(class_part.lower())
                if class_name is None or not file_name or "/" in file_name:
                    raise UserError(f"{where}: {rel_path!r} is not '<class>/<video>' with a class from classInd.txt")
                video_id = f"{class_name}/{os.path.splitext(file_name)[0]}"
                video = add_video(videos, Video(video_id, class_name, f"{class_name}/{file_name}"), where)
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


def locate_videos(index, video_dir):
    """``({video_id: Path}, {video_id: reason})``: each listed video under video_dir (class folders matched
    case-insensitively); reasons ``not found`` and ``empty file``."""
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


def list_name(split, subset):
    return split_list_name("ucf101", split, subset)


def json_name(split, subset):
    return f"ucf101_0{split}.json"  # 3D-ResNets' ucf101_01.json: both subsets of a split


# where it comes from: UCF101.rar (UCF-101/<Class>/v_*.avi) and UCF101TrainTestSplits-RecognitionTask.zip
# (ucfTrainTestlist/classInd.txt, trainlist0N.txt, testlist0N.txt); URLs are in the config (sources.ucf101.urls)
NESTED_ARCHIVES = False
TOLERATE_MISSING = False  # every archive is needed
SOURCE_LISTS = ()
LINK_LISTS = None
VIDEO_EXTENSIONS = (".avi",)


def find_split_files(roots):
    """The UCF101 split files under roots: the folder holding classInd.txt and trainlist01.txt."""
    for folder in walk_dirs(roots):
        if (folder / "classInd.txt").is_file() and (folder / "trainlist01.txt").is_file():
            return folder, [p for p in sorted(folder.iterdir()) if p.is_file()
                            and (p.name == "classInd.txt" or p.name.startswith(("trainlist0", "testlist0")))]
    raise UserError(f"UCF101: no ucfTrainTestlist (classInd.txt with trainlist01.txt) found under "
                    f"{', '.join(map(str, roots)) or 'nothing'}")


def arrange_sources(roots, files=(), dataset="UCF101", extensions=VIDEO_EXTENSIONS):
    """A UCF101 copy under roots (extracted archives or a tree on disk): its split files, and every video of the
    folder whose sub-folders are the classes."""
    folder, split_files = find_split_files(roots)
    video_dir = best_class_tree(roots, extensions, read_class_index(folder), dataset)
    return Arrangement(split_files, class_folder_videos(video_dir, extensions), {},
                       f"splits from {folder}, videos from {video_dir}")

