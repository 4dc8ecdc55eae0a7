"""Clip transforms on uint8 arrays (frames, H, W, channels); normalisation happens later, on the device.

Every frame of a clip gets the same crop and flip. Horizontal flip of flow also negates the horizontal component:
quantized flow_x becomes 255 − flow_x (motion to the right seen in a mirror goes left).
"""
import cv2
import numpy as np
import torch

# mmaction2's ImageNet statistics on 0–255, RGB order
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def multi_scale_crop_box(height, width, input_size, rng, scales=(1, 0.875, 0.75, 0.66), max_wh_scale_gap=1,
                         more_fix_crop=True):
    """(top, left, crop_h, crop_w) as mmaction2's MultiScaleCrop with fixed crop positions (TSN)."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    pairs = [(w, h) for i, w in enumerate(sizes) for j, h in enumerate(sizes) if abs(i - j) <= max_wh_scale_gap]
    crop_w, crop_h = pairs[rng.integers(len(pairs))]
    step_w, step_h = (width - crop_w) // 4, (height - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    x, y = grid[rng.integers(len(grid))]
    return y * step_h, x * step_w, crop_h, crop_w


def resize_frames(frames, width, height):
    if frames.shape[1:3] == (height, width):
        return frames
    resized = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames]
    return np.stack([r if r.ndim == 3 else r[..., None] for r in resized])


def resize_short_side(frames, short_side):
    height, width = frames.shape[1:3]
    if min(height, width) == short_side:
        return frames
    if height <= width:
        return resize_frames(frames, max(1, round(width * short_side / height)), short_side)
    return resize_frames(frames, short_side, max(1, round(height * short_side / width)))


def center_crop(frames, size):
    height, width = frames.shape[1:3]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return frames[:, top:top + size, left:left + size]


def three_crop(frames, size):
    """Three crops along the long side (left/centre/right or top/centre/bottom), as mmaction2's ThreeCrop."""
    height, width = frames.shape[1:3]
    if width >= height:
        lefts = [0, (width - size) // 2, width - size]
        return [frames[:, (height - size) // 2:(height - size) // 2 + size, x:x + size] for x in lefts]
    tops = [0, (height - size) // 2, height - size]
    return [frames[:, y:y + size, (width - size) // 2:(width - size) // 2 + size] for y in tops]


def ten_crop(frames, size):
    """Four corners and the centre, each also flipped (mmaction2's TenCrop); flow flips negate flow_x."""
    height, width = frames.shape[1:3]
    boxes = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
             ((height - size) // 2, (width - size) // 2)]
    crops = [frames[:, y:y + size, x:x + size] for y, x in boxes]
    return crops + [horizontal_flip(c, is_flow=frames.shape[-1] == 2) for c in crops]


def horizontal_flip(frames, is_flow):
    flipped = frames[:, :, ::-1]
    if is_flow:
        flipped = flipped.copy()
        flipped[..., 0] = 255 - flipped[..., 0]  # channel 0 is flow_x
    return np.ascontiguousarray(flipped)


def train_transform(frames, input_size, rng, is_flow, flip=True, scales=(1, 0.875, 0.75, 0.66), randaugment=None):
    """MultiScaleCrop → resize to input_size² → optional RandAugment (``{num_ops, magnitude}``, rgb only) →
    optional horizontal flip (p 0.5)."""
    top, left, crop_h, crop_w = multi_scale_crop_box(frames.shape[1], frames.shape[2], input_size, rng, scales)
    frames = resize_frames(frames[:, top:top + crop_h, left:left + crop_w], input_size, input_size)
    if randaugment:
        if is_flow:
            raise ValueError("randaugment works on rgb clips only; set it to null for flow")
        from .augment import rand_augment
        frames = rand_augment(frames, rng, **randaugment)
    if flip and rng.random() < 0.5:
        frames = horizontal_flip(frames, is_flow)
    return np.ascontiguousarray(frames)


def test_transform(frames, input_size, resize_short, crops="center"):
    """Resize the short side, then one centre crop, three crops or ten crops: a list of crops."""
    frames = resize_short_side(frames, resize_short)
    if crops == "three":
        return [np.ascontiguousarray(c) for c in three_crop(frames, input_size)]
    if crops == "ten":
        return [np.ascontiguousarray(c) for c in ten_crop(frames, input_size)]
    return [np.ascontiguousarray(center_crop(frames, input_size))]


def normalize_on_device(clips, mode, scheme="imagenet"):
    """uint8 (…, C, T, H, W) on any device → float, normalised there (keeps per-pixel work off the CPU).

    ``imagenet``: RGB mean/std on 0–255 and flow (v − 128) / 128; ``unit``: everything to [−1, 1] (pytorch-i3d).
    """
    clips = clips.to(torch.float32, copy=True)  # our own buffer: the arithmetic below runs in place (same values)
    channels = clips.shape[-4]
    if scheme == "unit" or mode == "flow":
        return clips.div_(127.5).sub_(1.0)
    mean = torch.tensor(IMAGENET_MEAN, device=clips.device).repeat(channels // 3).view(channels, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=clips.device).repeat(channels // 3).view(channels, 1, 1, 1)
    return clips.sub_(mean).div_(std)
