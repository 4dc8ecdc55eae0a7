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

    def label_of(self, class_name):
        return self.classes.index(class_name)
