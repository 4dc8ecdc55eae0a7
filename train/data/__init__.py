"""Data for training and evaluation: frame sampling, transforms, datasets over the rawframe lists."""
from .dataset import RawframeDataset, read_list
from .sampling import sample_clips
from .transforms import normalize_on_device, test_transform, train_transform

__all__ = ["RawframeDataset", "read_list", "sample_clips", "normalize_on_device", "test_transform",
           "train_transform"]
