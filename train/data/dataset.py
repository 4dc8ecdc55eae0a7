"""Datasets over mmaction2 rawframe lists (``class/video total_frames label``): a list, a frame source, a sampler
and a transform.

Only the sampled frames are decoded, inside DataLoader workers, through :mod:`prep.base.frame_source` (folders,
packs, every frame naming); clips leave as uint8 tensors and are normalised on the device
(:func:`train.data.transforms.normalize_on_device`). Random choices come from a generator seeded by
(seed, epoch, item), so a run is reproducible whatever the number of workers, and a resumed run repeats exactly.
"""
import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from prep.base.errors import UserError
from prep.base.frame_source import open_frames

from .batch_memory import BatchMemory, ClipBatch, PooledItems


class ListError(UserError, ValueError):
    """A list line that training or evaluation cannot use; the message is one line naming the list and the line."""


def read_numbered_list(path):
    """[(line number, video_id, total_frames, label)] of a rawframes list; the id may contain spaces (Kinetics
    classes). ListError naming the list and line for a line that is not ``video total_frames label`` in integers."""
    items = []
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError as error:
        raise ListError(f"{path}: not a text list ({error.reason} at byte {error.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            video_id, total, label = line.rsplit(" ", 2)
            items.append((number, video_id, int(total), int(label)))
        except ValueError:
            raise ListError(f"{path}: line {number} is not 'video total_frames label' (integers): "
                            f"{line[:200]!r}") from None
    return items


def read_list(path):
    """[(video_id, total_frames, label)] of a rawframes list (see :func:`read_numbered_list`)."""
    return [item[1:] for item in read_numbered_list(path)]


def check_list(path, num_classes, source, workers=8):
    """The items of list ``path``, checked before the first step, so a bad line costs a line, not a run: every
    label in 0..num_classes-1, every video's frames present under ``source`` and at least as many as the list
    says. ListError naming the list and the first bad line (in file order)."""
    numbered = read_numbered_list(path)
    for number, video_id, total, label in numbered:
        if not 0 <= label < num_classes:
            raise ListError(f"{path}: line {number}: label {label} of {video_id!r} is outside 0..{num_classes - 1} "
                            f"(the label map has {num_classes} classes)")
        if total < 1:
            raise ListError(f"{path}: line {number}: {video_id!r} has total_frames {total} (at least 1)")

    def problem(item):
        number, video_id, total, _ = item
        try:
            with source.open(video_id) as frames:
                on_disk = len(frames)
        except (UserError, OSError) as error:  # FrameError: no folder, pack or video; unreadable marker
            return f"{path}: line {number}: {video_id!r}: {error}"
        if total > on_disk:
            return (f"{path}: line {number}: {video_id!r} lists {total} frames, {on_disk} are on disk under "
                    f"{source.root}")
        return None

    # threads: counting is file-system waits (a marker read or a listing per video), not Python work
    with ThreadPoolExecutor(max(1, min(workers, len(numbered)))) as pool:
        for found in pool.map(problem, numbered):
            if found:
                raise ListError(found)
    return [item[1:] for item in numbered]


@dataclass(frozen=True)
class FrameSource:
    """Where a list's videos are: their rgb or flow frames under ``root`` (storage detected per video)."""

    root: str
    modality: str = "rgb"
    naming: str = "mmaction"
    storage: str = None
    video_decoder: str = "cpu"  # video files: cpu or cuda:N (prep.base.frame_source.choose_video_decoder)

    def open(self, video_id):
        return open_frames(self.root, video_id, self.modality, self.naming, self.storage, self.video_decoder)


class FrameDataset(Dataset):
    """Item i: (clip(s) uint8, label, i). ``sampler(total_frames, rng)`` gives frame numbers (views, num_clips,
    clip_len); ``transform(frames, numbers, rng)`` turns them into a (C', T, H, W) clip (training) or
    (views × crops, C', T, H, W) clips (testing)."""

    def __init__(self, items, source, sampler, transform, seed=0):
        self.items = read_list(items) if isinstance(items, (str, Path)) else list(items)
        self.source, self.sampler, self.transform, self.seed = source, sampler, transform, seed
        self.epoch = 0
        self.batch_memory = BatchMemory()
        self._clip_memory = None  # a worker's clip shape in memory (T, H, W, C'), learnt from its first batch

    @property
    def clips_per_video(self):
        return self.sampler.num_views * self.transform.num_crops

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.items)

    def clips(self, item, select=None, buffer=None):
        """The item's clip(s); ``buffer`` (flat uint8 memory of their size) receives them instead of new memory."""
        if get_worker_info() is not None and cv2.getNumThreads() != 1:
            cv2.setNumThreads(1)  # a worker is one core, as torch sets its own threads there (resize: −30 % CPU)
        video_id, total, _ = self.items[item]
        rng = np.random.default_rng([self.seed, self.epoch, item])
        numbers = self.sampler(total, rng)
        options = {key: value for key, value in (("select", select), ("buffer", buffer)) if value is not None}
        with self.source.open(video_id) as frames:
            return self.transform(frames, numbers, rng, **options)

    def __getitem__(self, item):
        return self.clips(item), self.items[item][2], item

    def __getitems__(self, items):
        """A batch's items, as a DataLoader worker fetches them: every clip written once, straight into one
        shared-memory batch that :func:`collate_clips` hands on as it is (without this, each clip is written to
        private memory, then copied into the shared batch — a third of the loader's CPU time, measured in
        tests/benchmarks/bench_dataloader.py). The batch memory is the worker's own, written again once the main
        process has released the batch (:mod:`train.data.batch_memory`)."""
        if get_worker_info() is None or len(items) == 1:
            return [self[item] for item in items]
        first = None
        if self._clip_memory is None:  # this worker's first batch: its first clip tells the clips' size
            first = self[items[0]]
            memory = first[0].permute(*_to_memory(first[0].dim()))
            if not memory.is_contiguous():
                return [first, *(self[item] for item in items[1:])]
            self._clip_memory = tuple(memory.shape)
        batch, token = self.batch_memory.take(math.prod(self._clip_memory) * len(items))
        out = []
        for position, item in enumerate(items):
            if position == 0 and first is not None:  # already made: copied in
                view = _clips_view(batch, 0, 1, self._clip_memory)[0]
                view.copy_(first[0])
            else:
                view = _write_clips(batch, position, 1, self._clip_memory, functools.partial(self.clips, item))[0]
            out.append((view, self.items[item][2], item))
        return PooledItems(out, token)


class ClipChunks(Dataset):
    """A test dataset cut into chunks of at most ``eval_batch`` clips, so evaluation memory does not grow with the
    views × crops: item i = :class:`ClipBatch` (clips (n, C', T, H, W), dataset index of each clip (n,)). ``chunks``
    come from :func:`plan_chunks`. In a DataLoader worker (``batch_size=None, collate_fn=keep_chunk``) a chunk is
    written straight into the worker's batch memory, like a training batch: release it when done."""

    def __init__(self, dataset, chunks):
        self.dataset, self.chunks = dataset, list(chunks)
        self._clip_memory = None  # a worker's clip shape in memory (T, H, W, C'), learnt from its first chunk

    def __len__(self):
        return len(self.chunks)

    def __getitem__(self, index):
        chunk = self.chunks[index]
        owners = torch.tensor([item for item, start, stop in chunk for _ in range(stop - start)], dtype=torch.int64)
        clip_memory = self._clip_memory
        if get_worker_info() is None or clip_memory is None:  # in one process, or a worker's first chunk
            parts = [self.dataset.clips(item, select=range(start, stop)) for item, start, stop in chunk]
            clips = parts[0] if len(parts) == 1 else join_clips(parts, torch.cat)
            memory = clips.permute(*_to_memory(clips.dim()))
            if get_worker_info() is not None and memory.is_contiguous():
                self._clip_memory = tuple(memory.shape[1:])
            return ClipBatch((clips, owners))
        batch, token = self.dataset.batch_memory.take(math.prod(clip_memory) * len(owners))
        first = 0
        for item, start, stop in chunk:
            _write_clips(batch, first, stop - start, clip_memory,
                         functools.partial(self.dataset.clips, item, select=range(start, stop)))
            first += stop - start
        return ClipBatch((_clips_view(batch, 0, len(owners), clip_memory), owners), token)


def keep_chunk(chunk):
    """The DataLoader collate of :class:`ClipChunks` (``batch_size=None``): the chunk as it is (the default would turn
    the ClipBatch into a list and lose its release)."""
    return chunk


def plan_chunks(num_videos, clips_per_video, eval_batch):
    """Groups of chunks [(video, first clip, stop clip)], each chunk ≤ ``eval_batch`` clips.

    Whole videos are packed together while they fit; a video with more clips than that is cut into chunks of its
    own. Every video lies in one group, and the plan depends only on the list, not on how many processes score it —
    so each process can take whole groups (:func:`shard_groups`) and compute every clip exactly as one process would.
    """
    if eval_batch < 1:
        raise ValueError(f"eval_batch must be at least 1, got {eval_batch}")
    if clips_per_video > eval_batch:
        return [[[(video, start, min(start + eval_batch, clips_per_video))]
                 for start in range(0, clips_per_video, eval_batch)] for video in range(num_videos)]
    per_chunk = eval_batch // clips_per_video
    return [[[(video, 0, clips_per_video) for video in range(first, min(first + per_chunk, num_videos))]]
            for first in range(0, num_videos, per_chunk)]


def shard_groups(groups, rank, world_size):
    """The chunks of process ``rank``: groups dealt round-robin, in order."""
    return [chunk for group in groups[rank::world_size] for chunk in group]


def _to_memory(dims):
    """The permutation (…, C', T, H, W) → (…, T, H, W, C'): the transforms' clips are views of channels-last memory."""
    return (*range(dims - 4), dims - 3, dims - 2, dims - 1, dims - 4)


def _from_memory(dims):
    return (*range(dims - 4), dims - 1, dims - 4, dims - 3, dims - 2)


def _clips_view(batch, first, count, clip_memory):
    """Clips ``first`` … ``first + count`` of a flat batch buffer as the transforms hand clips out: (count, C', T, H,
    W) over memory (count, T, H, W, C')."""
    numel = math.prod(clip_memory)
    view = batch[first * numel:(first + count) * numel].view(count, *clip_memory)
    return view.permute(*_from_memory(view.dim()))


def _write_clips(batch, first, count, clip_memory, make):
    """:func:`_clips_view` of those clips after ``make(buffer=…)`` wrote them into that slice of the buffer (flat uint8
    numpy); a result in memory of its own is copied in."""
    view = _clips_view(batch, first, count, clip_memory)
    numel = math.prod(clip_memory)
    written = make(buffer=batch[first * numel:(first + count) * numel].numpy())
    if written.data_ptr() != view.data_ptr():
        view.copy_(written.reshape(view.shape))
    return view


def _adjacent(memory):
    """True when contiguous clip memories lie one after the other in one storage (FrameDataset.__getitems__)."""
    first, numel = memory[0], memory[0].numel()
    return all(m.is_contiguous() and m.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
               and m.storage_offset() == first.storage_offset() + k * numel and m.shape == first.shape
               for k, m in enumerate(memory))


def join_clips(clips, join=torch.stack):
    """``join`` (stack or cat) of clip tensors in their memory order — the transforms hand out (…, C', T, H, W)
    views of channels-last memory (…, T, H, W, C'), and joining in that order is a plain copy, not a transposing
    one; the result is the same view of the joined memory. In a DataLoader worker the result goes to shared
    memory directly, as default_collate does."""
    dims = clips[0].dim()
    if dims < 4:
        return join(clips)
    memory = [c.permute(*_to_memory(dims)) for c in clips]  # (…, C', T, H, W) → (…, T, H, W, C')
    if not all(m.is_contiguous() for m in memory):
        return join(clips)
    if join is torch.stack and _adjacent(memory):  # already one batch (FrameDataset.__getitems__): no copy
        first = memory[0]
        batch = torch.empty(0, dtype=first.dtype).set_(first.untyped_storage(), first.storage_offset(),
                                                      (len(memory), *first.shape))
        return batch.permute(*_from_memory(batch.dim()))
    shape = list(memory[0].shape)
    shape = [len(memory), *shape] if join is torch.stack else [sum(m.shape[0] for m in memory), *shape[1:]]
    out = None
    if get_worker_info() is not None:
        numel = int(np.prod(shape))
        out = memory[0].new(memory[0]._typed_storage()._new_shared(numel, device=memory[0].device)).resize_(shape)
    joined = join(memory, out=out)
    return joined.permute(*_from_memory(joined.dim()))


def collate_clips(batch):
    """The DataLoader collate of (clip(s), label, index) items: clips joined without a transposing copy (the device
    makes them contiguous in :func:`normalize_on_device`), the rest as default_collate. A :class:`ClipBatch`: call
    its ``release()`` when done with the clips, so the worker can write their memory again."""
    clips, labels, indices = zip(*batch)
    joined = join_clips(list(clips))
    token = getattr(batch, "token", None)
    if token is not None and joined.untyped_storage().data_ptr() != clips[0].untyped_storage().data_ptr():
        token = None  # joined into new memory: the pooled buffer is not in this batch
    return ClipBatch((joined, default_collate(list(labels)), default_collate(list(indices))), token)
