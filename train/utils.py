"""What train.py needs besides the loop (as torchvision's references/video_classification/utils.py): distributed
set-up, seeding, checkpoints, the resumable sampler, the stop signal and metric logging.

Every tensor handed to torch.distributed here is made on the process's device (``Distributed.device``): NCCL takes
only CUDA tensors and gloo only CPU ones, so a CPU tensor in a collective crashes a multi-GPU run at its first step
(tests/test_distributed.py guards every collective of a DDP run).
"""
import os
import random
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from prep.base.atomic import atomic_file
from prep.base.diskspace import is_disk_full
from prep.base.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: one process per GPU, or CPU processes over gloo."""
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0


def device_and_backend(local_rank, local_world_size, gpus):
    """(device, backend) of a process: cuda:LOCAL_RANK over NCCL when each process has a GPU of its own; with more
    processes than GPUs they share them round-robin over gloo (NCCL refuses two ranks on one GPU, "Duplicate GPU
    detected"; gloo all-reduces CUDA tensors), so a one-GPU machine still runs the multi-process code; cpu over gloo
    without GPUs."""
    if not gpus:
        return torch.device("cpu"), "gloo"
    return torch.device("cuda", local_rank % gpus), "nccl" if local_world_size <= gpus else "gloo"


def init_distributed():
    """Read torchrun's environment, pick the device (:func:`device_and_backend`) and join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device, backend = device_and_backend(local_rank, local_world_size,
                                         torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # also the device all_gather_object uses under NCCL
    if world_size > 1:
        dist.init_process_group(backend=backend, device_id=device if backend == "nccl" else None)
    return Distributed(rank=int(os.environ.get("RANK", "0")), world_size=world_size, local_rank=local_rank,
                       local_world_size=local_world_size, device=device)


def barrier(context):
    if context.world_size > 1:  # device_ids: NCCL's only
        nccl = dist.get_backend() == "nccl"
        dist.barrier(device_ids=[context.device.index] if nccl else None)


def close_distributed(context):
    if context.world_size > 1:
        dist.destroy_process_group()


def seed_everything(seed, deterministic):
    """Seed Python, NumPy and torch; deterministic mode forbids nondeterministic kernels, otherwise cuDNN picks the
    fastest convolution algorithms for the shapes it sees (benchmark)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


def reduce_sum(values, context):
    """Element-wise sum of a list of numbers over all processes (float64 on the process's device)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    if context.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def reduce_max(values, context):
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    if context.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def gather_objects(value, context):
    """Every process's ``value`` (picklable), in rank order."""
    if context.world_size == 1:
        return [value]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


# ------------------------------------------------------------------------------------------------ stop signal

class StopRequested:
    """SIGTERM / SIGUSR1 (SLURM preemption, ``scancel --signal``) set a flag; the loop checkpoints at the next step
    boundary and exits cleanly. Under DDP every rank must stop at the same step, so the flag is agreed on with an
    all-reduce (max) of a tensor on the process's device."""

    def __init__(self, world_size, device):
        self.signal = None
        self.world_size = world_size
        self.device = device
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self.request)

    def request(self, signum, frame):
        self.signal = signum

    def agree(self, finite):
        """``(all finite, stop requested)`` over every process, in one all-reduce: ``finite`` is this process's
        loss check (a bool tensor on the device). A step's end calls it, so that every rank stops at the same step
        whether for a signal or a diverged loss."""
        flags = torch.stack([torch.tensor(0 if self.signal is None else 1, dtype=torch.int32, device=self.device),
                             (~finite).to(device=self.device, dtype=torch.int32).reshape(())])
        if self.world_size > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, diverged = (bool(flag) for flag in flags.tolist())
        if stop and self.signal is None:
            self.signal = "peer"
        return not diverged, stop

    def requested(self):
        if self.world_size == 1:
            return self.signal is not None
        flag = torch.tensor([0 if self.signal is None else 1], dtype=torch.int32, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        stop = bool(flag.item())
        if stop and self.signal is None:
            self.signal = "peer"
        return stop


# ------------------------------------------------------------------------------------------------ data loading

class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) whose epoch order depends only on (seed, epoch), and which can
    skip the samples a resumed job has already trained on."""

    def __init__(self, dataset, world_size, rank, shuffle, seed, drop_last):
        super().__init__(dataset, world_size, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.skip = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self):
        return super().__len__() - self.skip


class EpochAwareDataset(Dataset):
    """A dataset whose ``set_epoch`` reaches persistent DataLoader workers: they keep their own copy of the dataset
    across epochs, so the epoch (which seeds each item's random crop) travels in a shared-memory tensor, written
    before each epoch's iterator starts."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch):
        self.epoch[0] = epoch

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(self.epoch[0]))
        return self.dataset[item]

    def __getitems__(self, items):  # a whole batch at once (FrameDataset: clips written into one shared batch)
        if not hasattr(self.dataset, "__getitems__"):
            return [self[item] for item in items]
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(self.epoch[0]))
        return self.dataset.__getitems__(items)


def ignore_stop_signals(worker_id):
    """DataLoader ``worker_init_fn``: workers leave SIGTERM / SIGUSR1 to the training process. torchrun and SLURM
    signal the whole process group, and a worker dying of it mid-epoch would turn the clean stop into a crash; the
    workers still end with their parent."""
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def cpus_per_process(threads=None, local_world_size=1):
    """CPUs this process may use: the job's --threads share when given, else the affinity mask split between the
    node's processes."""
    if threads:
        return max(1, int(threads))
    return max(1, len(os.sched_getaffinity(0)) // max(1, local_world_size))


def autocast_dtype(setting, device):
    """The AMP dtype of a recipe's ``amp``: ``auto`` = bf16 on a GPU that has it, else fp16, and off on the CPU;
    ``bf16`` / ``fp16`` force it on any device (CPU autocast runs both); ``none`` (or null) = off. Training,
    validation and ``train.evaluate`` all take it from here, so ``auto`` means the same in each."""
    if setting in (None, "none") or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "auto":
        setting = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if setting not in ("bf16", "fp16"):
        raise ValueError(f"amp must be auto, none, bf16 or fp16, got {setting!r}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def use_channels_last(settings, device):
    """NHWC weights: ``channels_last: auto`` (default) for the 2D models (TSN, TSM) on a GPU, where tensor-core
    convolutions run faster that way; true / false force it on or off on any device."""
    setting = settings.get("channels_last", "auto")
    if setting == "auto":
        return settings["layout"] == "segments" and device.type == "cuda"
    return bool(setting)


def to_channels_last(model):
    """Every 4-D parameter and buffer in channels_last, every 5-D one in channels_last_3d, in place.
    (``Module.to(memory_format=torch.channels_last)`` refuses a model holding 5-D weights — "required rank 4 tensor"
    — such as a TSM with non-local blocks or any 3D network.)"""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.dim() in formats:
                tensor.data = tensor.data.contiguous(memory_format=formats[tensor.dim()])
    return model


def shared_memory_bytes():
    """Half of /dev/shm (where DataLoader workers hand batches over), else half of the machine's memory."""
    import shutil
    try:
        return shutil.disk_usage("/dev/shm").total // 2
    except OSError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def fit_loader_memory(batch_bytes, workers, prefetch, setting="auto", processes=1, what="loader"):
    """(workers, prefetch) whose prefetched batches — batch bytes × prefetch × workers — fit ``loader_memory_gb``
    (``auto``: half of /dev/shm shared by the node's ``processes``): prefetch is lowered first, then workers. A batch
    that does not fit even once is an error naming the setting, not a bus error in a worker."""
    if workers == 0:
        return 0, prefetch
    budget = shared_memory_bytes() // max(1, processes) if setting in (None, "auto") else int(float(setting) * 2 ** 30)
    if batch_bytes > budget:
        raise UserError(f"{what}: one batch is {batch_bytes / 2 ** 30:.2f} GB, over the loader memory budget of "
                        f"{budget / 2 ** 30:.2f} GB (loader_memory_gb: {setting}); lower batch_size / eval_batch or "
                        "raise loader_memory_gb (and /dev/shm)")
    fitted_prefetch = max(1, min(prefetch, budget // (batch_bytes * workers)))
    fitted_workers = max(1, min(workers, budget // (batch_bytes * fitted_prefetch)))
    if (fitted_workers, fitted_prefetch) != (workers, prefetch):
        print(f"{what}: {workers} workers × prefetch {prefetch} × {batch_bytes / 2 ** 20:.0f} MB batches exceed the "
              f"loader memory budget of {budget / 2 ** 30:.2f} GB (loader_memory_gb: {setting}); using "
              f"{fitted_workers} workers × prefetch {fitted_prefetch}", flush=True)
    return fitted_workers, fitted_prefetch


def loader_workers(setting, device, cpus):
    """DataLoader workers: the recipe's number, or with ``auto`` on GPU every CPU granted to the process but the
    one that runs the training loop (JPEG decoding is what starves a GPU), on CPU 2 (the model wants the cores)."""
    if setting not in (None, "auto"):
        return int(setting)
    return max(1, cpus - 1) if device.type == "cuda" else min(2, cpus)


# ------------------------------------------------------------------------------------------------ checkpoints

def checkpoint_paths(run_dir):
    return sorted((Path(run_dir) / "checkpoints").glob("epoch_*.pt"))


def interrupted_path(run_dir):
    return Path(run_dir) / "checkpoints" / "interrupted.pt"


def load_checkpoint(path):
    """A checkpoint's state on the CPU (load_state_dict copies tensors to the model's and optimizer's device)."""
    return torch.load(path, map_location="cpu", weights_only=False)


class ResumeError(RuntimeError):
    """A run directory that cannot be resumed as it stands; one line saying why and what to do."""


def resume_point(run_dir, warn=print):
    """``(path, state)`` of the checkpoint to resume from, or ``(None, None)`` for a fresh run: the one with the
    most training done among the interrupted (mid-epoch) checkpoint and the newest epoch checkpoint that loads. A
    checkpoint that does not load (truncated by a full disk, damaged) is passed over with a ``warn`` line naming
    it, in favour of the next older one; ResumeError when checkpoints exist and none loads."""
    interrupted = interrupted_path(run_dir)
    epochs = checkpoint_paths(run_dir)[::-1]
    found, broken = [], []
    for group in ([interrupted] if interrupted.is_file() else [], epochs):
        for path in group:
            try:
                state = load_checkpoint(path)
                _progress(state)
            except Exception as error:  # torch.load: EOFError, RuntimeError, UnpicklingError, … by damage
                broken.append(path)
                detail = (str(error).splitlines() or [""])[0][:200]
                warn(f"warning: {path} does not load ({type(error).__name__}: {detail}); passed over for an older "
                     "checkpoint", flush=True)
                continue
            found.append((path, state))
            break  # the newest of a group that loads: older epochs hold less training
    if not found:
        if broken:
            raise ResumeError(f"{run_dir}: no checkpoint loads ({', '.join(p.name for p in broken)}); remove "
                              f"{Path(run_dir) / 'checkpoints'} to start the run over")
        return None, None
    return max(found, key=lambda pair: _progress(pair[1]))


def _progress(state):
    return state["epoch"], state.get("step", 0)


def save_checkpoint(path, state):
    """Atomic (a checkpoint half written by a killed job never stands under its name); a full disk is an OSError
    naming ``path``, which train.py turns into one line."""
    try:
        with atomic_file(path, "wb") as handle:  # a file object: a full disk raises OSError(ENOSPC), not torch's
            torch.save(state, handle)             # opaque RuntimeError
    except OSError as error:
        if is_disk_full(error):
            raise OSError(error.errno, os.strerror(error.errno), str(path)) from None
        raise


def prune_checkpoints(run_dir, keep):
    for old in checkpoint_paths(run_dir)[:-keep]:
        old.unlink()


def rng_state(device):
    """The generators dropout and augmentation on the device draw from (CPU, and CUDA on a GPU)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device):
    if isinstance(state, torch.Tensor):  # checkpoints before the CUDA state was kept
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def git_commit():
    """The project's commit (with ``+dirty`` for local changes), or None outside a git checkout: results name the
    code that produced them."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True,
                                timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# ------------------------------------------------------------------------------------------------ metric logging

class EpochMeter:
    """Sums of one epoch's training: loss, correct, clips seen, time waiting for data and total step time. Kept on
    the device (no synchronisation per step); :meth:`summary` reduces them over all processes."""

    def __init__(self, device):
        self.device = device
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.float64, device=device)
        self.seen = 0
        self.data_seconds = 0.0
        self.step_seconds = 0.0

    def update(self, loss, correct, batch, data_seconds, step_seconds):
        self.loss += loss.detach().double() * batch
        self.correct += correct.double()
        self.seen += batch
        self.data_seconds += data_seconds
        self.step_seconds += step_seconds

    def summary(self, context):
        loss, correct, seen, data, step = reduce_sum(
            [self.loss.item(), self.correct.item(), self.seen, self.data_seconds, self.step_seconds], context)
        seen_per_process = seen / context.world_size
        step_per_process = step / context.world_size
        record = {"train_loss": loss / max(seen, 1), "train_top1": correct / max(seen, 1),
                  "data_wait_fraction": round(data / step, 4) if step > 0 else 0.0,
                  "clips_per_second": round(seen_per_process / step_per_process, 2) if step > 0 else 0.0}
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
            record["peak_memory_mb"] = round(reduce_max([peak], context)[0], 1)
        return record
