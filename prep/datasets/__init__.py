"""One module per dataset: where it comes from and how its classes and splits are read — nothing else.

Every reader returns a :class:`DatasetIndex`; everything downstream (frames, flow, annotations) is shared code.
"""
from dataclasses import dataclass, field

SUBSETS = ("train", "test", "unused")


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
    # (video_dir, Video.path) -> the file on disk, for datasets whose lists and folders disagree in case
    resolve_path: object = None
    # video_dir -> ({video_id: Path}, [(video_id, reason)]), for datasets whose clips are found in one scan (Kinetics)
    locate: object = None

    def label_of(self, class_name):
        return self.classes.index(class_name)


DATASETS = ("synthetic", "ucf101", "hmdb51", "kinetics400")


def read_dataset(dataset, splits_dir, class_folders="mmaction2"):
    """The :class:`DatasetIndex` of ``dataset`` from its official split / annotation files in ``splits_dir``;
    ``class_folders``: the class-folder form of datasets whose labels are not folder names (Kinetics; see
    :data:`prep.datasets.kinetics400.CLASS_FOLDER_FORMS`), ignored by the others (their classes are folders)."""
    from prep import UserError

    if dataset in ("synthetic", "ucf101"):  # the synthetic dataset writes UCF101's split files
        from prep.datasets import ucf101
        index = ucf101.read_splits(splits_dir, name=dataset)
        index.resolve_path = ucf101.resolve_video_path
        return index
    if dataset == "hmdb51":
        from prep.datasets import hmdb51
        return hmdb51.read_splits(splits_dir, name=dataset)
    if dataset == "kinetics400":
        from prep.datasets import kinetics400
        index = kinetics400.read_annotations(splits_dir, name=dataset, class_folders=class_folders)
        index.locate = lambda video_dir: kinetics400.locate_clips(index, video_dir)
        return index
    raise UserError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")


def dataset_module(dataset):
    """The module of a dataset (prep.datasets.<name>): where it comes from and how its files are laid out."""
    import importlib

    from prep import UserError

    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    return importlib.import_module(f"prep.datasets.{dataset}")
