"""Clip transforms that write each output frame once, straight into a preallocated uint8 clip.

The geometry is mmaction2's (open-mmlab/mmaction2 @4d6c934, mmaction/datasets/transforms/processing.py): the
short side resized to ``resize_short`` (``Resize(scale=(-1, 256))``), then a crop box — MultiScaleCrop (lines
475-529) in training; CenterCrop (1068-1075), ThreeCrop (1166-1183) or TenCrop (1241-1265) in testing — then the
crop resized to ``size``² (``Resize(scale=(224, 224), keep_ratio=False)``). Here the box is found in the resized
frame's coordinates and mapped back to the stored frame, which is cropped first and resized once (the same pixels
up to half a stored pixel, one resize instead of two); when the box is at least 2×, 4× or 8× the output, the JPEG
is decoded at that reduced size (``VideoFrames.read(k, reduce=)``, libjpeg's DCT scaling).

Every frame of a clip gets the same box and flip. Horizontal flip of flow also negates the horizontal component:
quantized flow_x becomes 255 − flow_x (motion to the right seen in a mirror goes left). Normalisation happens
later, on the device (:func:`normalize_on_device`).
"""
import itertools
import math

import cv2
import numpy as np
import torch

# mmaction2's ImageNet statistics on 0–255, RGB order
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
REDUCTIONS = (8, 4, 2)  # what VideoFrames.read(k, reduce=) decodes at, largest first
CROPS = {"center": 1, "three": 3, "ten": 10}


def resized_shape(height, width, short_side):
    """(height, width) after mmaction2's Resize(scale=(-1, short_side)): mmcv's rescale_size, int(x · s + 0.5)."""
    if not short_side:
        return height, width
    scale = short_side / min(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def multi_scale_crop_box(height, width, input_size, rng, scales=(1, 0.875, 0.75, 0.66), max_wh_scale_gap=1,
                         num_fixed_crops=5):
    """(top, left, crop_h, crop_w) as mmaction2's MultiScaleCrop with ``random_crop=False`` (processing.py lines
    487-529): crop sides from ``scales`` × the short side whose scale levels differ by at most
    ``max_wh_scale_gap`` (0: square crops, as the I3D configs), a side within 2 pixels of ``input_size`` snapped to
    it (line 499), placed at one of 5 fixed positions (corners, centre) or 13 (``num_fixed_crops``: TSM's configs)."""
    if num_fixed_crops not in (5, 13):
        raise ValueError(f"num_fixed_crops must be 5 or 13, got {num_fixed_crops!r}")
    sizes = [int(min(height, width) * s) for s in scales]
    candidates = [[w, h] for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_wh_scale_gap]
    crop_w, crop_h = [input_size if abs(side - input_size) < 3 else side for side in
                      candidates[rng.integers(len(candidates))]]
    crop_w, crop_h = min(crop_w, width), min(crop_h, height)
    step_w, step_h = (width - crop_w) // 4, (height - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if num_fixed_crops == 13:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    x, y = grid[rng.integers(len(grid))]
    return y * step_h, x * step_w, crop_h, crop_w


def random_resized_crop_box(height, width, rng, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                            max_attempts=10):
    """(top, left, crop_h, crop_w) as mmaction2's RandomResizedCrop (processing.py lines 290-338): up to 10 draws of
    an area fraction and a log-uniform aspect ratio, the first that fits placed at random; else the centre square."""
    aspect_ratios = np.exp(rng.uniform(np.log(aspect_ratio_range[0]), np.log(aspect_ratio_range[1]), max_attempts))
    areas = rng.uniform(*area_range, size=max_attempts) * height * width
    widths = np.round(np.sqrt(areas * aspect_ratios)).astype(int)
    heights = np.round(np.sqrt(areas / aspect_ratios)).astype(int)
    for crop_w, crop_h in zip(widths, heights):
        if 0 < crop_h <= height and 0 < crop_w <= width:
            left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
            return top, left, int(crop_h), int(crop_w)
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def random_crop_box(height, width, size, rng):
    """(top, left, size, size) at a random place (MindSpore I3D's RandomCrop, src/transforms/spatial_transforms.py
    lines 82-91; mmaction2's RandomCrop)."""
    size_h, size_w = min(size, height), min(size, width)
    return int(rng.integers(0, height - size_h + 1)), int(rng.integers(0, width - size_w + 1)), size_h, size_w


def eval_crop_boxes(height, width, size, crops="center"):
    """[(top, left, h, w, flipped)] of the test crops in a (height, width) frame, mmaction2's order. (Flipped flow
    crops also get 255 − x, as training's flips: mmaction2's TenCrop mirrors flow without negating it.)"""
    size_h, size_w = min(size, height), min(size, width)
    if crops == "center":
        return [((height - size_h) // 2, (width - size_w) // 2, size_h, size_w, False)]
    if crops == "three":  # along the long side: left/top, right/bottom, middle (ThreeCrop, lines 1170-1183)
        if width >= height:
            step = (width - size_w) // 2
            return [((height - size_h) // 2, x, size_h, size_w, False) for x in (0, 2 * step, step)]
        step = (height - size_h) // 2
        return [(y, (width - size_w) // 2, size_h, size_w, False) for y in (0, 2 * step, step)]
    if crops == "ten":  # four corners and the centre, each also flipped (TenCrop, lines 1244-1265)
        step_w, step_h = (width - size_w) // 4, (height - size_h) // 4
        boxes = [(0, 0), (0, 4 * step_w), (4 * step_h, 0), (4 * step_h, 4 * step_w), (2 * step_h, 2 * step_w)]
        return ([(y, x, size_h, size_w, False) for y, x in boxes] + [(y, x, size_h, size_w, True) for y, x in boxes])
    raise ValueError(f"test crops must be one of {', '.join(CROPS)}, got {crops!r}")


def stored_box(box, stored_shape, resized):
    """A (top, left, h, w) box of the resized frame, in the stored frame's pixels (rounded, inside the frame)."""
    (height, width), (resized_h, resized_w) = stored_shape, resized
    fy, fx = height / resized_h, width / resized_w
    top, left = min(round(box[0] * fy), height - 1), min(round(box[1] * fx), width - 1)
    return (top, left, max(1, min(round(box[2] * fy), height - top)), max(1, min(round(box[3] * fx), width - left)))


def reduction(boxes, size):
    """The largest decode reduction after which every box still covers at least ``size`` pixels each way."""
    smallest = min(min(box[2], box[3]) for box in boxes)
    return next((r for r in REDUCTIONS if smallest >= size * r), 1)


def reduced_box(box, reduce, reduced_shape):
    if reduce == 1:
        return box
    height, width = reduced_shape
    top, left = min(box[0] // reduce, height - 1), min(box[1] // reduce, width - 1)
    return top, left, max(1, min(math.floor(box[2] / reduce), height - top)), \
        max(1, min(math.floor(box[3] / reduce), width - left))


_PIXEL_TYPES = {2: np.uint16, 4: np.uint32}  # a pixel's channels as one number (a flow x/y pair: 2 bytes)


def _copy_pixels(dst, src):
    """``src`` (H×W×C uint8, contiguous) into ``dst`` (the same shape, a slot of a frame stack: pixels ``group × C``
    bytes apart). numpy copies a strided last axis of 2 bytes element by element (0.49 ms for a 224² flow frame);
    seen as one uint16 per pixel the same copy takes 0.03 ms."""
    pixel = _PIXEL_TYPES.get(dst.shape[-1])
    if pixel is None or dst.flags.c_contiguous or dst.strides[-1] != 1 or not src.flags.c_contiguous:
        np.copyto(dst, src)
        return
    np.copyto(dst.view(pixel)[..., 0], src.view(pixel)[..., 0])


class ClipWriter:
    """Builds clips (clips, T, size, size, group, channels) uint8 and hands them out as (clips, C', T, H, W) tensors.

    ``layout="segments"`` (TSN/TSM): T = segments; a segment's ``clip_len`` frames are stacked into channels (a flow
    stack of 5 gives 10 channels, x/y pairs in frame order). ``layout="clip"`` (I3D): T = every sampled frame.
    """

    def __init__(self, channels, size, layout="segments", is_flow=False):
        if layout not in ("segments", "clip"):
            raise ValueError(f"layout must be segments or clip, got {layout!r}")
        self.channels, self.size, self.layout, self.is_flow = channels, size, layout, is_flow

    def slots(self, numbers):
        """{(segment, frame in segment): (t, g)} for sampled frame numbers (num_clips, clip_len)."""
        num_clips, clip_len = numbers.shape
        if self.layout == "segments":
            return {(c, j): (c, j) for c in range(num_clips) for j in range(clip_len)}
        return {(c, j): (c * clip_len + j, 0) for c in range(num_clips) for j in range(clip_len)}

    def allocate(self, clips, numbers, buffer=None):
        """The output for ``clips`` clips of sampled frame numbers (num_clips, clip_len): new memory, or ``buffer``
        (flat uint8 of that size: a slice of a batch in shared memory, FrameDataset.__getitems__) seen in that shape."""
        num_clips, clip_len = numbers.shape
        if self.layout == "segments":
            shape = (clips, num_clips, self.size, self.size, clip_len, self.channels)
        else:
            shape = (clips, num_clips * clip_len, self.size, self.size, 1, self.channels)
        if buffer is None:
            return np.empty(shape, np.uint8)
        if buffer.size != math.prod(shape):
            raise ValueError(f"a clip buffer of {buffer.size} bytes for clips of shape {shape}")
        return buffer.reshape(shape)

    def write(self, out, clip, positions, image, flip=False):
        """``image`` (a crop of a decoded frame) resized to size², mirrored when ``flip``, into every (t, g) of
        ``positions`` of ``clip``: straight into the output when the slot is contiguous (no flow stack)."""
        first = out[clip, positions[0][0], :, :, positions[0][1]]
        direct = first.flags.c_contiguous
        result = image
        if image.shape[:2] != (self.size, self.size):
            result = cv2.resize(image, (self.size, self.size), dst=first if direct and not flip else None,
                                interpolation=cv2.INTER_LINEAR)
        if flip:
            result = cv2.flip(result, 1, dst=first if direct else None)
        if result is not first:
            _copy_pixels(first, result.reshape(first.shape))
        for t, g in positions[1:]:  # a frame sampled twice (a clip looping past the end)
            _copy_pixels(out[clip, t, :, :, g], first)

    def negate_flow_x(self, out, clip):
        """The x component of a mirrored flow clip: 255 − x."""
        x = out[clip, ..., 0]
        np.subtract(255, x, out=x)

    def to_tensor(self, out):
        clips, steps, height, width, group, channels = out.shape
        return torch.from_numpy(out).view(clips, steps, height, width, group * channels).permute(0, 4, 1, 2, 3)


class _FrameBoxes:
    """Decodes each distinct sampled frame of a view once, at the reduction the boxes allow, and writes its crops."""

    def __init__(self, writer, resize_short):
        self.writer, self.resize_short = writer, resize_short
        self.shapes = {}  # stored frame size per video, learnt from the first decode (per worker process)

    def stored_shape(self, frames, first):
        key = (str(getattr(frames, "path", "")), frames.video_id)
        if key not in self.shapes:
            image = frames.read(int(first))
            self.shapes[key] = image.shape[:2]
            return image.shape[:2], image
        return self.shapes[key], None

    def crops(self, out, image, positions, jobs, boxes):
        for (clip, _, flip), (top, left, height, width) in zip(jobs, boxes):
            self.writer.write(out, clip, positions, image[top:top + height, left:left + width], flip)

    def fill(self, out, frames, numbers, jobs):
        """``jobs``: [(clip, box in the resized frame, flip)] sharing the frame numbers (num_clips, clip_len)."""
        shape, first_image = self.stored_shape(frames, numbers.flat[0])
        resized = resized_shape(shape[0], shape[1], self.resize_short)
        boxes = [stored_box(box, shape, resized) for _, box, _ in jobs]
        reduce = reduction(boxes, self.writer.size)
        reduced_shape = (math.ceil(shape[0] / reduce), math.ceil(shape[1] / reduce))
        boxes = [reduced_box(box, reduce, reduced_shape) for box in boxes]
        where = {}
        for (c, j), slot in self.writer.slots(numbers).items():
            where.setdefault(int(numbers[c, j]), []).append(slot)
        first = int(numbers.flat[0])
        reuse = first_image is not None and reduce == 1  # the frame read to learn the size, already decoded
        decoded = frames.read_many([n for n in where if not (reuse and n == first)], reduce)  # one planned pass
        for number, image in itertools.chain([(first, first_image)] if reuse else [], decoded):
            self.crops(out, image, where[number], jobs, boxes)
        for clip, _, flip in jobs:
            if flip and self.writer.is_flow:
                self.writer.negate_flow_x(out, clip)


TRAIN_CROPS = ("multiscale", "random_resized", "random")


class TrainTransform:
    """A crop box (``crop``: MultiScaleCrop, RandomResizedCrop or RandomCrop) → resize to ``size``² → optional
    horizontal flip (p 0.5) → optional RandAugment (``{num_ops, magnitude}``, rgb only); returns (C', T, H, W) uint8."""

    def __init__(self, writer, resize_short=256, scales=(1, 0.875, 0.75, 0.66), max_wh_scale_gap=1,
                 num_fixed_crops=5, flip=True, randaugment=None, crop_input_size=None, crop="multiscale"):
        if crop not in TRAIN_CROPS:
            raise ValueError(f"train_crop must be one of {', '.join(TRAIN_CROPS)}, got {crop!r}")
        self.crop = crop
        if randaugment and writer.is_flow:
            raise ValueError("randaugment works on rgb clips only: put it under the recipe's rgb: overrides "
                             "(or set flow: {randaugment: null})")
        self.writer, self.frames = writer, _FrameBoxes(writer, resize_short)
        self.scales, self.max_wh_scale_gap, self.num_fixed_crops = tuple(scales), max_wh_scale_gap, num_fixed_crops
        self.flip, self.randaugment = flip, dict(randaugment) if randaugment else None
        self.crop_input_size = crop_input_size or writer.size
        self.num_crops = 1

    def __call__(self, frames, numbers, rng, buffer=None):
        numbers = numbers[0]
        shape, _ = self.frames.stored_shape(frames, numbers.flat[0])
        height, width = resized_shape(shape[0], shape[1], self.frames.resize_short)
        if self.crop == "multiscale":
            box = multi_scale_crop_box(height, width, self.crop_input_size, rng, self.scales, self.max_wh_scale_gap,
                                       self.num_fixed_crops)
        elif self.crop == "random_resized":
            box = random_resized_crop_box(height, width, rng)
        else:
            box = random_crop_box(height, width, self.writer.size, rng)
        flip = bool(self.flip and rng.random() < 0.5)
        out = self.writer.allocate(1, numbers, buffer)
        self.frames.fill(out, frames, numbers, [(0, box, flip)])
        if self.randaugment:
            from .augment import rand_augment
            clip = out[0]
            steps, size, _, group, channels = clip.shape
            images = clip.transpose(0, 3, 1, 2, 4).reshape(steps * group, size, size, channels)
            augmented = rand_augment(images, rng, **self.randaugment)
            clip[...] = augmented.reshape(steps, group, size, size, channels).transpose(0, 2, 3, 1, 4)
        return self.writer.to_tensor(out)[0]


class EvalTransform:
    """Resize the short side, then one centre crop, three crops or ten crops of each view: (views × crops, C', T,
    H, W) uint8, view-major (clip v · crops + k). ``select`` picks some of those clips (chunked evaluation)."""

    def __init__(self, writer, resize_short=256, crops="center"):
        if crops not in CROPS:
            raise ValueError(f"test crops must be one of {', '.join(CROPS)}, got {crops!r}")
        self.writer, self.frames, self.crops, self.num_crops = writer, _FrameBoxes(writer, resize_short), crops, \
            CROPS[crops]

    def __call__(self, frames, numbers, rng=None, select=None, buffer=None):
        views = len(numbers)
        select = list(range(views * self.num_crops)) if select is None else list(select)
        shape, _ = self.frames.stored_shape(frames, numbers.flat[0])
        height, width = resized_shape(shape[0], shape[1], self.frames.resize_short)
        boxes = eval_crop_boxes(height, width, self.writer.size, self.crops)
        out = self.writer.allocate(len(select), numbers[0], buffer)
        for view in sorted({clip // self.num_crops for clip in select}):
            jobs = [(row, boxes[clip % self.num_crops][:4], boxes[clip % self.num_crops][4])
                    for row, clip in enumerate(select) if clip // self.num_crops == view]
            self.frames.fill(out, frames, numbers[view], jobs)
        return self.writer.to_tensor(out)


def normalize_on_device(clips, mode, scheme="imagenet"):
    """uint8 (…, C, T, H, W) on any device → float, normalised there (keeps per-pixel work off the CPU).

    ``imagenet``: RGB mean/std on 0–255 and flow (v − 128) / 128; ``unit``: everything to [−1, 1] (pytorch-i3d).
    """
    # our own contiguous buffer (the loader's clips are views of channels-last memory: the transpose happens here, in
    # the same pass as the conversion, on the device); the arithmetic below runs in place
    clips = clips.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    channels = clips.shape[-4]
    if scheme == "unit" or mode == "flow":
        return clips.div_(127.5).sub_(1.0)
    mean = torch.tensor(IMAGENET_MEAN, device=clips.device).repeat(channels // 3).view(channels, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=clips.device).repeat(channels // 3).view(channels, 1, 1, 1)
    return clips.sub_(mean).div_(std)
