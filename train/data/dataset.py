"""A dataset over mmaction2 rawframe lists (``class/video total_frames label``).

Only the sampled frames are decoded, inside DataLoader workers; clips leave as uint8 tensors and are normalised on
the device (:func:`train.data.transforms.normalize_on_device`). Random choices come from a generator seeded by
(seed, epoch, item), so a run is reproducible whatever the number of workers, and a resumed run repeats exactly.
"""
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from prep.base.packed import PACK_SUFFIX, open_packed

from .sampling import sample_clips
from .transforms import test_transform, train_transform


def read_list(path):
    """[(video_id, total_frames, label)] of a rawframes list; the id may contain spaces (Kinetics classes)."""
    items = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            video_id, total, label = line.rsplit(" ", 2)
            items.append((video_id, int(total), int(label)))
        except ValueError:
            raise ValueError(f"{path}: line {number} is not 'video total_frames label': {line!r}") from None
    return items


def read_frame(path, gray):
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: missing or unreadable frame")
    return image[..., None] if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_frame(data, gray, where):
    """As read_frame, for JPEG bytes from a pack (prep frames/flow --pack)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{where}: unreadable frame")
    return image[..., None] if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class RawframeDataset(Dataset):
    """Clips of one modality (``rgb``: img_*.jpg, 3 channels; ``flow``: flow_x_/flow_y_*.jpg, 2 channels).

    ``layout="segments"`` (TSN/TSM): T is the clip axis, and a clip's ``clip_len`` frames are stacked into channels
    (a flow stack of 5 gives 10 channels). ``layout="clip"`` (I3D): T is the time axis over all sampled frames.
    """

    def __init__(self, list_path, root, mode, num_clips, clip_len=1, frame_interval=1, layout="segments",
                 test_mode=False, input_size=224, resize_short=256, flip=True, scales=(1, 0.875, 0.75, 0.66),
                 views=1, crops="center", seed=0, randaugment=None):
        if mode not in ("rgb", "flow"):
            raise ValueError(f"mode must be rgb or flow, got {mode!r}")
        if randaugment and mode != "rgb":
            raise ValueError("randaugment works on rgb clips only: put it under the recipe's rgb: overrides "
                             "(or set flow: {randaugment: null})")
        self.randaugment = dict(randaugment) if randaugment else None
        self.items = read_list(list_path) if isinstance(list_path, (str, Path)) else list(list_path)
        self.root = Path(root)
        self.mode, self.layout, self.test_mode = mode, layout, test_mode
        self.num_clips, self.clip_len, self.frame_interval = num_clips, clip_len, frame_interval
        self.input_size, self.resize_short, self.flip, self.scales = input_size, resize_short, flip, tuple(scales)
        self.views, self.crops, self.seed = views, crops, seed
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.items)

    def load_frames(self, video_id, numbers):
        """uint8 (len(numbers), H, W, C) for 1-based frame numbers, each distinct frame decoded once."""
        folder = self.root / video_id
        pack = Path(f"{folder}{PACK_SUFFIX}")
        if pack.is_file():  # one file per video: decode from the pack
            with open_packed(pack) as packed:
                return self._load(numbers, lambda name, gray: decode_frame(packed.read(name), gray, pack / name))
        return self._load(numbers, lambda name, gray: read_frame(folder / name, gray))

    def _load(self, numbers, read):
        cache = {}
        for n in np.unique(numbers):
            if self.mode == "rgb":
                cache[n] = read(f"img_{n:05d}.jpg", False)
            else:
                cache[n] = np.concatenate([read(f"flow_x_{n:05d}.jpg", True),
                                           read(f"flow_y_{n:05d}.jpg", True)], axis=-1)
        return np.stack([cache[n] for n in numbers.reshape(-1)])

    def to_tensor(self, frames, num_clips):
        """(num_clips·clip_len, H, W, C) → (C', T, H, W) in the layout the model expects."""
        height, width, channels = frames.shape[1:]
        if self.layout == "segments":
            frames = frames.reshape(num_clips, self.clip_len, height, width, channels)
            frames = frames.transpose(0, 2, 3, 1, 4).reshape(num_clips, height, width, self.clip_len * channels)
        return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))

    def __getitem__(self, item):
        video_id, total, label = self.items[item]
        rng = np.random.default_rng([self.seed, self.epoch, item])
        numbers = sample_clips(total, self.num_clips, self.clip_len, self.frame_interval, self.test_mode,
                               self.views, rng)
        if not self.test_mode:
            frames = train_transform(self.load_frames(video_id, numbers[0]), self.input_size, rng,
                                     is_flow=self.mode == "flow", flip=self.flip, scales=self.scales,
                                     randaugment=self.randaugment)
            return self.to_tensor(frames, self.num_clips), label, item
        views = []
        for view in numbers:
            for crop in test_transform(self.load_frames(video_id, view), self.input_size, self.resize_short,
                                       self.crops):
                views.append(self.to_tensor(crop, self.num_clips))
        return torch.stack(views), label, item
