"""Which frames a clip takes, following mmaction2's ``SampleFrames`` definitions.

``num_clips`` clips of ``clip_len`` frames, ``frame_interval`` apart. TSN/TSM: ``num_clips`` = segments,
``clip_len`` 1 (rgb) or 5 (a flow stack); I3D: one clip of 32 frames every 2nd frame (R50) or 64 consecutive
(Inception). Training takes a random offset inside each of ``num_clips`` equal segments; testing takes segment
centres. Indices are 1-based frame numbers (``img_00001.jpg`` is frame 1); clips running past the end wrap around,
as mmaction2's default ``out_of_bound_opt='loop'``.
"""
import numpy as np


def clip_offsets(num_frames, num_clips, clip_len, frame_interval, test_mode, rng=None):
    """0-based first frame of each clip."""
    span = clip_len * frame_interval
    if test_mode:
        average = (num_frames - span + 1) / float(num_clips)
        if num_frames > span - 1:
            return (np.arange(num_clips) * average + average / 2.0).astype(np.int64)
        return np.zeros(num_clips, dtype=np.int64)
    rng = rng if rng is not None else np.random.default_rng()
    average = (num_frames - span + 1) // num_clips
    if average > 0:
        return np.arange(num_clips) * average + rng.integers(0, average, size=num_clips)
    if num_frames > max(num_clips, span):
        return np.sort(rng.integers(0, num_frames - span + 1, size=num_clips))
    if average == 0:
        ratio = (num_frames - span + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio).astype(np.int64)
    return np.zeros(num_clips, dtype=np.int64)


def sample_clips(num_frames, num_clips, clip_len=1, frame_interval=1, test_mode=False, views=1, rng=None):
    """1-based frame numbers, shape (views, num_clips, clip_len).

    With ``views`` > 1 (test time), ``num_clips × views`` clips are spread evenly over the video and view v takes
    every views-th of them, so each view covers the whole video and together they cover it densely.
    """
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    offsets = clip_offsets(num_frames, num_clips * views, clip_len, frame_interval, test_mode, rng)
    frames = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    frames = np.mod(frames, num_frames) + 1
    return frames.reshape(num_clips, views, clip_len).transpose(1, 0, 2) if views > 1 else frames[None]
