"""Which frames a clip takes: ``uniform`` — mmaction2's ``SampleFrames`` (open-mmlab/mmaction2 @4d6c934,
mmaction/datasets/transforms/loading.py lines 170-398, the 1.x definitions); ``dense`` — its ``DenseSampleFrames``
(lines 574-659); ``temporal_crop`` — 3D-ResNets / MindSpore-I3D's ``TemporalRandomCrop`` / ``TemporalCenterCrop``
with loop padding (mindspore-ai/models @eab643f research/cv/I3D/src/transforms/temporal_transforms.py lines 54-93).

``num_clips`` clips of ``clip_len`` frames, ``frame_interval`` apart. TSN/TSM: ``num_clips`` = segments,
``clip_len`` 1 (rgb) or 5 (a flow stack); I3D: one clip of 32 frames every 2nd frame (R50) or 64 consecutive
(Inception). Training takes a random offset inside each of ``num_clips`` equal segments; testing takes segment
centres (``clip_len`` 1) or clips spread evenly from the first to the last possible start (longer clips). Indices
are 1-based frame numbers (``img_00001.jpg`` is frame 1); clips running past the end wrap around, as mmaction2's
default ``out_of_bound_opt='loop'``.
"""
from dataclasses import dataclass

import numpy as np


def train_offsets(num_frames, num_clips, span, rng):
    """0-based first frames in training: loading.py lines 257-271 (``keep_tail_frames`` False)."""
    average = (num_frames - span + 1) // num_clips
    if average > 0:
        return np.arange(num_clips) * average + rng.integers(0, average, size=num_clips)
    if num_frames > max(num_clips, span):
        return np.sort(rng.integers(0, num_frames - span + 1, size=num_clips))
    if average == 0:
        ratio = (num_frames - span + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio).astype(np.int64)
    return np.zeros(num_clips, dtype=np.int64)


def eval_offsets(num_frames, num_clips, clip_len, frame_interval, twice_sample=False):
    """0-based first frames in testing: loading.py lines 289-314, with test-time clip length
    ``(clip_len - 1) · frame_interval + 1`` (line 343).

    ``twice_sample``: 2D (``clip_len`` 1) appends the segment starts to the segment centres (line 295); 3D doubles
    the clips but keeps the spacing of ``num_clips`` (lines 298-311, upstream's behaviour: the extra clips run past
    the end and wrap around).
    """
    if clip_len == 1:
        average = num_frames / float(num_clips)
        starts = np.arange(num_clips) * average
        offsets = starts + average / 2.0
        if twice_sample:
            offsets = np.concatenate([offsets, starts])
        return offsets.astype(np.int64)
    max_offset = max(num_frames - ((clip_len - 1) * frame_interval + 1), 0)
    total = num_clips * 2 if twice_sample else num_clips
    if total == 1:
        return np.array([max_offset // 2], dtype=np.int64)
    if num_clips == 1:  # upstream divides by num_clips - 1 = 0 here
        raise ValueError("twice_sample with a single clip of several frames is undefined in mmaction2's "
                         "SampleFrames; use test_views instead")
    return np.round(np.arange(total) * (max_offset / float(num_clips - 1))).astype(np.int64)


def dense_offsets(num_frames, num_clips, test_mode, positions, rng, sample_range=64):
    """0-based first frames of DenseSampleFrames (loading.py lines 628-659): ``num_clips`` clips
    ``sample_range // num_clips`` apart from a random start (training) or from each of ``positions`` starts spread
    over the video (testing), wrapping around."""
    sample_position = max(1, 1 + num_frames - sample_range)
    interval = sample_range // num_clips
    base = np.arange(num_clips) * interval
    if test_mode:
        starts = np.linspace(0, sample_position - 1, num=positions, dtype=int)
    else:
        starts = [0 if sample_position == 1 else int(rng.integers(0, sample_position - 1))]
    return np.concatenate([(base + start) % num_frames for start in starts])


def temporal_crop(num_frames, size, test_mode, rng):
    """0-based frames of TemporalRandomCrop / TemporalCenterCrop (temporal_transforms.py lines 54-93): ``size``
    consecutive frames from a random start in [0, max(0, N − size − 1)] or centred, repeated cyclically when the video
    is shorter."""
    if test_mode:
        begin = max(0, num_frames // 2 - size // 2)
    else:
        begin = int(rng.integers(0, max(0, num_frames - size - 1) + 1))
    taken = min(begin + size, num_frames) - begin
    return begin + np.arange(size) % taken


@dataclass(frozen=True)
class ClipSampler:
    """Frame numbers of one video, shape (views, num_clips, clip_len).

    With ``views`` > 1 (test time), ``num_clips × views`` clips are placed as one SampleFrames call of that many
    clips and view v takes every views-th of them, so each view covers the whole video and together they cover it
    densely. ``twice_sample`` (test time) doubles the views: the second half are mmaction2's extra twice-sample clips.
    """

    num_clips: int
    clip_len: int = 1
    frame_interval: int = 1
    test_mode: bool = False
    views: int = 1
    twice_sample: bool = False
    kind: str = "uniform"

    def __post_init__(self):
        if self.kind not in ("uniform", "dense", "temporal_crop"):
            raise ValueError(f"sampling must be uniform, dense or temporal_crop, got {self.kind!r}")
        if self.kind == "temporal_crop" and (self.num_clips, self.views) != (1, 1):
            raise ValueError("temporal_crop sampling takes one clip (num_clips 1, test_views 1)")

    @property
    def num_views(self):
        return self.views * (2 if self.twice_sample and self.test_mode and self.kind == "uniform" else 1)

    def __call__(self, num_frames, rng=None):
        if num_frames < 1:
            raise ValueError("a video needs at least one frame")
        rng = rng if rng is not None else np.random.default_rng()
        if self.kind == "temporal_crop":
            return (temporal_crop(num_frames, self.clip_len, self.test_mode, rng) + 1).reshape(1, 1, self.clip_len)
        if self.kind == "dense":  # views are the test start positions, each with its num_clips clips
            offsets = dense_offsets(num_frames, self.num_clips, self.test_mode, self.views, rng)
            frames = offsets[:, None] + np.arange(self.clip_len)[None, :] * self.frame_interval
            return (np.mod(frames, num_frames) + 1).reshape(-1, self.num_clips, self.clip_len)
        clips = self.num_clips * self.views
        if self.test_mode:
            offsets = eval_offsets(num_frames, clips, self.clip_len, self.frame_interval, self.twice_sample)
        else:
            offsets = train_offsets(num_frames, clips, self.clip_len * self.frame_interval, rng)
        frames = offsets[:, None] + np.arange(self.clip_len)[None, :] * self.frame_interval
        frames = np.mod(frames, num_frames) + 1  # loading.py line 382: 'loop'
        groups = len(offsets) // clips
        return (frames.reshape(groups, self.num_clips, self.views, self.clip_len).transpose(0, 2, 1, 3)
                .reshape(groups * self.views, self.num_clips, self.clip_len))


def sample_clips(num_frames, num_clips, clip_len=1, frame_interval=1, test_mode=False, views=1, rng=None,
                 twice_sample=False):
    """1-based frame numbers, shape (views, num_clips, clip_len) (see :class:`ClipSampler`)."""
    return ClipSampler(num_clips, clip_len, frame_interval, test_mode, views, twice_sample)(num_frames, rng)
