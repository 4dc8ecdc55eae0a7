"""Data for training and evaluation: frame sampling, transforms, datasets over the rawframe lists."""
from .batch_memory import ClipBatch, release_batch
from .dataset import (ClipChunks, FrameDataset, FrameSource, ListError, check_list, collate_clips, join_clips,
                      keep_chunk, plan_chunks, read_list, shard_groups)
from .sampling import ClipSampler, sample_clips
from .transforms import ClipWriter, EvalTransform, TrainTransform, normalize_on_device

__all__ = ["ClipBatch", "ClipChunks", "ClipSampler", "ClipWriter", "EvalTransform", "FrameDataset", "FrameSource",
           "ListError", "TrainTransform", "check_list", "collate_clips", "join_clips", "keep_chunk",
           "normalize_on_device", "plan_chunks", "read_list", "release_batch", "sample_clips", "shard_groups"]
