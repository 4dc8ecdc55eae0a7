"""UCF101: classes from ``classInd.txt``, splits from ``trainlist0N.txt`` / ``testlist0N.txt``.

The official files use CRLF line ends; classInd says ``HandstandPushups`` while the files are
``v_HandStandPushups_*``, so class names are matched case-insensitively. The synthetic dataset writes the same
files, so this reader serves both.
"""
import functools
from pathlib import Path

from prep.base.errors import UserError
from prep.base.names import safe_relative
from prep.base.sources import best_class_tree, walk_dirs
from prep.datasets import (SPLITS, Arrangement, DatasetFacts, SourceList, add_listed_video, class_folder_videos,
                           dataset_index, locate_class_folder_videos, split_list_name)


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
                add_listed_video(videos, class_name, file_name, split, subset, where)
    return dataset_index(name, classes, videos, available)


locate_videos = locate_class_folder_videos
list_name = functools.partial(split_list_name, "ucf101")


def json_name(split, subset):
    return f"ucf101_0{split}.json"  # 3D-ResNets' ucf101_01.json: both subsets of a split


# where it comes from: UCF101.rar (UCF-101/<Class>/v_*.avi) and UCF101TrainTestSplits-RecognitionTask.zip
# (ucfTrainTestlist/classInd.txt, trainlist0N.txt, testlist0N.txt), every archive needed; how it is stored: small enough
# for JPEG frames (~60 GB) at its native 320x240 (mmaction2's rawframes; MindSpore I3D's frames are 240 high)
FACTS = DatasetFacts(
    name="ucf101",
    videos=13320,
    sources={"urls": SourceList(("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
                                 "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip"),
                                "the video archive and the split files' archive")},
    frame_size={"short_side": None},
)


def find_split_files(roots):
    """The UCF101 split files under roots: the folder holding classInd.txt and trainlist01.txt."""
    for folder in walk_dirs(roots):
        if (folder / "classInd.txt").is_file() and (folder / "trainlist01.txt").is_file():
            return folder, [p for p in sorted(folder.iterdir()) if p.is_file()
                            and (p.name == "classInd.txt" or p.name.startswith(("trainlist0", "testlist0")))]
    raise UserError(f"UCF101: no ucfTrainTestlist (classInd.txt with trainlist01.txt) found under "
                    f"{', '.join(map(str, roots)) or 'nothing'}")


def arrange_sources(roots, files=()):
    """A UCF101 copy under roots (extracted archives or a tree on disk): its split files, and every video of the
    folder whose sub-folders are the classes."""
    folder, split_files = find_split_files(roots)
    video_dir = best_class_tree(roots, FACTS.video_extensions, read_class_index(folder), "UCF101")
    return Arrangement(split_files, class_folder_videos(video_dir, FACTS.video_extensions), {},
                       f"splits from {folder}, videos from {video_dir}")

