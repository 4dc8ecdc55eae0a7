"""Shared-memory batches that a DataLoader worker writes again once the main process has released them.

A worker hands each batch to the main process in shared memory. Fresh shared memory costs the kernel a fault and a
zeroed page per 4 KiB when the worker writes it, and the freeing when the main process drops it: 40 ms per I3D batch
of 8 × 32 × 224² × 3 (38.5 MB) on the 2-core test VM, where writing the same bytes into memory already mapped takes
0.1 ms — a fifth of the loader's time (tests/benchmarks/bench_dataloader.py, docs/training.md). So each worker keeps a
few batch buffers and writes a buffer again only after the main process said it is done with the batch in it:

- the main process calls :meth:`ClipBatch.release` when it no longer reads the batch (training: once the clips are
  copied to the device / normalised; a pinned batch is a copy, released as soon as it arrives);
- a release writes the batch's token into a small shared table, one cell per (worker, buffer), written only by the
  main process; the worker remembers the token it gave each buffer and reuses a buffer only when the table holds that
  token. One writer per cell: no lock and no race. Tokens carry the worker's process id and a counter, so a late
  release of a batch from a worker that has since exited never frees a buffer of its successor;
- a batch nobody releases (another consumer, an exception mid-step) keeps its buffer: the worker takes new memory,
  as without this module, and at most :data:`BUFFERS_PER_WORKER` buffers per worker are kept.
"""
import itertools
import os
import weakref

import torch
from torch.utils.data import get_worker_info

BUFFERS_PER_WORKER = 8  # ≥ the batches a worker can have out at once: prefetch (≤ 4 here) + the one in use + pinning
MAX_WORKERS = 64  # workers beyond this many take new memory for every batch
_TABLES = weakref.WeakValueDictionary()  # key → release table, in the process that made it (the main process)
_KEYS = itertools.count()


def shared_uint8(numel):
    """A flat uint8 tensor in new shared memory (what a DataLoader worker hands to the main process without a copy)."""
    storage = torch.empty(0, dtype=torch.uint8)._typed_storage()._new_shared(numel)
    return torch.empty(0, dtype=torch.uint8).set_(storage._untyped_storage, 0, (numel,))


class BatchMemory:
    """Per dataset: the release table (made in the main process, before the workers start, so they share it) and,
    inside each worker, that worker's buffers."""

    def __init__(self):
        self.key = (os.getpid(), next(_KEYS))
        self.released = torch.full((MAX_WORKERS, BUFFERS_PER_WORKER), -1, dtype=torch.int64).share_memory_()
        _TABLES[self.key] = self.released
        self._owner, self._buffers, self._tokens = None, [], None

    def __getstate__(self):  # to spawned workers: the table travels, the buffers are each process's own
        return {"key": self.key, "released": self.released}

    def __setstate__(self, state):
        self.key, self.released = state["key"], state["released"]
        self._owner, self._buffers, self._tokens = None, [], None

    def take(self, numel):
        """(flat uint8 shared tensor of ``numel`` bytes, release token or None). Outside a worker, or with every
        buffer still out, new memory without a token."""
        info = get_worker_info()
        if info is None or info.id >= MAX_WORKERS:
            return shared_uint8(numel), None
        pid = os.getpid()
        if self._owner != pid:  # first batch of this process (a forked worker inherits its parent's object)
            start = ((pid & 0x3FFFFF) << 40) + (int.from_bytes(os.urandom(3), "little") << 16)
            self._owner, self._buffers, self._tokens = pid, [], itertools.count(start)
        released = self.released[info.id].numpy()
        free = [slot for slot, (_, token) in enumerate(self._buffers) if released[slot] == token]
        slot = next((s for s in free if self._buffers[s][0].numel() == numel), None)
        if slot is not None:
            buffer = self._buffers[slot][0]
        elif len(self._buffers) < BUFFERS_PER_WORKER:
            slot, buffer = len(self._buffers), shared_uint8(numel)
            self._buffers.append(None)
        elif free:  # a free buffer of another size: replaced
            slot, buffer = free[0], shared_uint8(numel)
        else:
            return shared_uint8(numel), None
        token = next(self._tokens)
        self._buffers[slot] = (buffer, token)
        return buffer, (self.key, info.id, slot, token)


def release(token):
    """Marks the batch of ``token`` done (in the process that made the table; elsewhere nothing happens)."""
    if token is None:
        return
    key, worker, slot, value = token
    table = _TABLES.get(key)
    if table is not None:
        table.numpy()[worker, slot] = value


def release_batch(batch):
    """:meth:`ClipBatch.release` for a batch of any collate (others have nothing to release)."""
    if isinstance(batch, ClipBatch):
        batch.release()


class ClipBatch(tuple):
    """(clips, labels, indices) of a batch, plus the token that gives its shared memory back to the worker that
    wrote it. Unpacks and indexes as the tuple; ``pin_memory`` (DataLoader's pinning thread) keeps the token."""

    def __new__(cls, items, token=None):
        batch = super().__new__(cls, items)
        batch.token = token
        return batch

    def __reduce__(self):
        return ClipBatch, (tuple(self), self.token)

    def pin_memory(self):
        return ClipBatch((item.pin_memory() if isinstance(item, torch.Tensor) else item for item in self), self.token)

    def release(self):
        """The worker may write this batch's memory again: call when nothing reads the clips any more."""
        release(self.token)
        self.token = None


class PooledItems(list):
    """A worker's batch items whose clips lie in one pooled buffer (FrameDataset.__getitems__), with its token."""

    def __init__(self, items, token):
        super().__init__(items)
        self.token = token

