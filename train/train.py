"""torchrun entry: train one model on one dataset and mode, a checkpoint each epoch, resumable.

    torchrun --standalone --nproc-per-node N -m train.train --settings JSON --train-list L --val-list L \\
        --root FRAMES_OR_FLOW_ROOT --classes label_map.txt --run-dir work/RUN

DDP over gloo (CPU) or nccl (GPU); AMP on GPU when the recipe asks. A restarted job resumes from the newest
checkpoint in RUN/checkpoints; SIGTERM / SIGUSR1 (SLURM preemption) finish the current step, write a checkpoint and
exit cleanly. Rank 0 logs one JSON line per epoch to RUN/log.jsonl; the finished model goes to RUN/final.pt.
"""
import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from prep.base.diskspace import disk_full_message, is_disk_full
from train.data import collate_clips, normalize_on_device
from train.data.augment import mix_clips, mixed_targets, mixing_rng, soft_cross_entropy
from train.models import PretrainedError, apply_pretrained
from train.presets import make_dataset
from train.recipe import make_model, resolve


def setup_distributed():
    """(rank, world_size, local_rank, device): one process per GPU, or CPU processes over gloo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, local_rank, device


def seed_everything(seed, deterministic):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


HEAD_PREFIXES = ("fc.", "logits.")


def parameter_groups(model, settings, lr):
    """Parameter groups with the recipe's multipliers: the head's weights ×head_lr_mult, its bias
    ×head_bias_lr_mult without weight decay (mmaction2 / PaddleVideo TSM's fc_lr5); ``trainable_prefixes``
    freezes every parameter whose name starts with none of them (MindSpore-I3D fine-tuning: logits, Mixed_5)."""
    prefixes = settings.get("trainable_prefixes")
    groups = {"body": [], "head_weight": [], "head_bias": []}
    for name, parameter in model.named_parameters():
        if prefixes and not name.startswith(tuple(prefixes)):
            parameter.requires_grad_(False)
            continue
        if name.startswith(HEAD_PREFIXES):
            groups["head_bias" if name.endswith(".bias") else "head_weight"].append(parameter)
        else:
            groups["body"].append(parameter)
    if prefixes and not any(groups.values()):
        raise ValueError(f"trainable_prefixes {prefixes} match no parameter of {settings['arch']}")
    decay = settings["weight_decay"]
    specs = {"body": (1.0, decay), "head_weight": (settings.get("head_lr_mult", 1.0), decay),
             "head_bias": (settings.get("head_bias_lr_mult", 1.0),
                           decay if settings.get("head_bias_weight_decay", True) else 0.0)}
    return [{"params": params, "lr": lr * specs[name][0], "lr_mult": specs[name][0], "weight_decay": specs[name][1]}
            for name, params in groups.items() if params]


def make_optimizer(model, settings, world_size):
    """SGD or Adam; the learning rate scales linearly with the total batch (recipes quote it at reference_batch);
    the total batch counts gradient accumulation (batch_size × world_size × accumulate)."""
    total_batch = settings["batch_size"] * world_size * settings.get("accumulate", 1)
    lr = settings["lr"] * total_batch / (settings["reference_batch"] or total_batch)
    groups = parameter_groups(model, settings, lr)
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=settings["momentum"]), lr
    if settings["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=lr), lr
    raise ValueError(f"unknown optimizer {settings['optimizer']!r} (sgd, adam)")


def lr_factor(settings, epoch_progress):
    """Multiplier of the base lr at a fractional epoch: linear warm-up, then cosine, multistep or step decay."""
    warmup = settings["warmup_epochs"]
    if warmup and epoch_progress < warmup:
        return max(epoch_progress / warmup, 1e-3)
    if settings["schedule"] == "cosine":
        span = max(settings["epochs"] - warmup, 1e-8)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch_progress - warmup) / span)))
    if settings["schedule"] == "multistep":
        return settings["gamma"] ** sum(epoch_progress >= m for m in settings["milestones"])
    if settings["schedule"] == "step":  # every milestones[0] epochs
        return settings["gamma"] ** int(epoch_progress // settings["milestones"][0])
    if settings["schedule"] == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {settings['schedule']!r} (cosine, multistep, step, constant)")


def checkpoint_paths(run_dir):
    return sorted((Path(run_dir) / "checkpoints").glob("epoch_*.pt"))


def latest_checkpoint(run_dir):
    """The checkpoint with the most training done: an interrupted one (mid-epoch) or the newest epoch's."""
    candidates = checkpoint_paths(run_dir)[-1:]
    interrupted = Path(run_dir) / "checkpoints" / "interrupted.pt"
    if interrupted.is_file():
        candidates.append(interrupted)
    if not candidates:
        return None
    return max(candidates, key=lambda p: _progress(torch.load(p, map_location="cpu", weights_only=False)))


def _progress(state):
    return (state["epoch"], state.get("step", 0))


def save_checkpoint(path, state):
    """Atomic: a checkpoint half written by a killed job never stands under its name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:  # a full disk then raises OSError(ENOSPC), not torch's opaque RuntimeError
            torch.save(state, handle)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if is_disk_full(error):
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    os.replace(tmp, path)


def load_classes(path):
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


class StopRequested:
    """SIGTERM / SIGUSR1 set a flag; the loop checkpoints at the next step boundary and exits cleanly.

    Under DDP every rank must stop at the same step, so the flag is agreed on with an all-reduce (max).
    """

    def __init__(self, world_size=1):
        self.signal = None
        self.world_size = world_size
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self.request)

    def request(self, signum, frame):
        self.signal = signum

    def requested(self):
        if self.world_size == 1:
            return self.signal is not None
        flag = torch.tensor([0 if self.signal is None else 1])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signal is None:
            self.signal = "peer"
        return bool(flag.item())


def train_one_epoch(model, loader, optimizer, settings, base_lr, epoch, device, scaler, stop, show_bar,
                    first_step=0, on_stop=None):
    """One pass over the loader (from ``first_step`` when resuming mid-epoch); returns (totals, finished).

    With ``accumulate`` N the optimizer steps every N batches on the mean of their gradients (a last, shorter
    window at the epoch's end is averaged over its own batches), and a stop request is honoured only at a window's
    end, so a checkpoint never holds half-accumulated gradients. MixUp / CutMix (``mixup_alpha`` /
    ``cutmix_alpha``) mix the device batch with a generator seeded by (seed, rank, epoch, step).
    """
    model.train()
    if settings.get("norm_eval"):  # mmaction2's norm_eval: BatchNorm uses (and keeps) its running statistics
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    loss_fn = torch.nn.CrossEntropyLoss()
    totals = {"loss": 0.0, "correct": 0, "seen": 0}
    steps = first_step + len(loader)
    accumulate = int(settings.get("accumulate", 1))
    if accumulate < 1 or first_step % accumulate:
        raise ValueError(f"accumulate {accumulate}: resuming at step {first_step} is not an accumulation boundary")
    mixing = settings.get("mixup_alpha", 0) or settings.get("cutmix_alpha", 0)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings["amp"])
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings['epochs']}", disable=not show_bar, leave=False,
               mininterval=2.0)
    for step, (clips, labels, _) in enumerate(bar, start=first_step):
        window_start = step - step % accumulate
        window = min(accumulate, steps - window_start)  # batches in this accumulation window
        last_of_window = step + 1 == window_start + window
        if step == window_start:
            for group in optimizer.param_groups:  # the window's lr: as one big batch at its first step
                group["lr"] = base_lr * group["lr_mult"] * lr_factor(settings, epoch + window_start / steps)
            optimizer.zero_grad(set_to_none=True)
        clips = normalize_on_device(clips.to(device, non_blocking=True), settings["mode"], settings["normalize"])
        labels = labels.to(device, non_blocking=True)
        mixed = None
        if mixing:
            mixed = mix_clips(clips, settings.get("mixup_alpha", 0), settings.get("cutmix_alpha", 0),
                              mixing_rng(settings["seed"], epoch, step, rank))
        if mixed is not None:
            clips = mixed[0]
        sync = last_of_window or not hasattr(model, "no_sync")  # DDP: all-reduce only at the window's end
        with (contextlib.nullcontext() if sync else model.no_sync()):
            with torch.autocast(device.type, dtype=amp_dtype,
                                enabled=amp_dtype is not None and device.type == "cuda"):
                logits = model(clips)
                if mixed is None:
                    loss = loss_fn(logits.float(), labels)
                else:
                    targets = mixed_targets(labels, mixed[1], mixed[2], logits.shape[1])
                    loss = soft_cross_entropy(logits.float(), targets)
            scaler.scale(loss / window if window > 1 else loss).backward()
        if last_of_window:
            if settings["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
        totals["loss"] += loss.item() * len(labels)
        hard = labels if mixed is None else targets.argmax(1)  # mixed targets: their argmax
        totals["correct"] += (logits.argmax(1) == hard).sum().item()
        totals["seen"] += len(labels)
        if last_of_window and stop.requested() and step + 1 < steps:
            on_stop(step + 1)
            return totals, False
    return totals, True


@torch.no_grad()
def predict(model, loader, settings, device, show_bar=False, desc="eval"):
    """Per-video class probabilities (views averaged as probabilities), labels and dataset indices."""
    model.eval()
    probabilities, labels, indices = [], [], []
    for clips, label, index in tqdm(loader, desc=desc, disable=not show_bar, leave=False, mininterval=2.0):
        batch, views = clips.shape[:2]
        clips = normalize_on_device(clips.to(device).flatten(0, 1), settings["mode"], settings["normalize"])
        scores = model(clips).float().softmax(dim=1).view(batch, views, -1).mean(dim=1)
        probabilities.append(scores.cpu())
        labels.append(label)
        indices.append(index)
    return torch.cat(probabilities), torch.cat(labels), torch.cat(indices)


def gather(tensors, world_size):
    """All ranks' predictions, concatenated (DistributedSampler pads; duplicates are dropped by index later)."""
    if world_size == 1:
        return tensors
    gathered = [None] * world_size
    dist.all_gather_object(gathered, tensors)
    return tuple(torch.cat([g[i] for g in gathered]) for i in range(len(tensors)))


def evaluate_loader(model, loader, settings, device, world_size, show_bar=False):
    probabilities, labels, indices = gather(predict(model, loader, settings, device, show_bar), world_size)
    order = {}
    for row, index in enumerate(indices.tolist()):
        order.setdefault(index, row)  # first occurrence: drop DistributedSampler's padding
    rows = torch.tensor([order[i] for i in sorted(order)])
    return probabilities[rows], labels[rows], torch.tensor(sorted(order))


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) whose epoch order depends only on (seed, epoch), and which can
    skip the batches a resumed job has already trained on."""

    def __init__(self, dataset, world_size, rank, shuffle, seed, drop_last):
        super().__init__(dataset, world_size, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.skip = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self):
        return super().__len__() - self.skip


def make_loader(dataset, settings, world_size, rank, shuffle, batch_size, drop_last=False):
    sampler = ResumableSampler(dataset, world_size, rank, shuffle, settings["seed"], drop_last)
    # a private generator: creating an iterator must not draw from the global RNG that dropout uses, or a run
    # resumed mid-epoch would see different dropout masks
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=settings["data_workers"],
                      pin_memory=torch.cuda.is_available(), drop_last=drop_last, collate_fn=collate_clips,
                      generator=torch.Generator().manual_seed(settings["seed"]))


def run(args):
    rank, world_size, local_rank, device = setup_distributed()
    settings = resolve(json.loads(args.settings), args.mode)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(settings["seed"] + rank, settings["deterministic"])
    classes = load_classes(args.classes)
    run_dir = Path(args.run_dir)
    is_main = rank == 0

    train_set = make_dataset(settings, args.train_list, args.root, test_mode=False, naming=args.naming)
    val_set = make_dataset(settings, args.val_list, args.root, test_mode=True, naming=args.naming)
    if len(train_set) == 0:
        raise SystemExit(f"error: {args.train_list}: no training videos")
    batch_size = min(settings["batch_size"], len(train_set) // world_size or 1)
    drop_last = len(train_set) >= 2 * batch_size * world_size
    train_loader = make_loader(train_set, settings, world_size, rank, True, batch_size, drop_last)
    val_loader = make_loader(val_set, settings, world_size, rank, False, batch_size)

    model = make_model(settings, len(classes)).to(device)
    resume_from = latest_checkpoint(run_dir)
    # before DDP wrapping, and only into a fresh run: a resumed run's checkpoint holds the weights (and their record)
    pretrained = apply_pretrained(model, settings, args.pretrained) if resume_from is None else None
    if settings.get("sync_bn") and world_size > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer, base_lr = make_optimizer(model, settings, world_size)
    scaler = torch.amp.GradScaler(device.type, enabled=settings["amp"] == "fp16" and device.type == "cuda")
    start_epoch, start_step = 0, 0
    if resume_from is not None:
        state = torch.load(resume_from, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"][rank] if len(state["rng"]) > rank else state["rng"][0])
        start_epoch, start_step = state["epoch"], state.get("step", 0)
        pretrained = state.get("pretrained")
        if is_main:
            print(f"resuming from {resume_from} (epoch {start_epoch} + {start_step} steps done)", flush=True)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    stop = StopRequested(world_size)
    best = max((json.loads(line).get("val_top1", 0) for line in _log_lines(run_dir)), default=-1.0)

    def snapshot(epoch, step):
        rng = gather_rng_states(world_size)
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch, "step": step, "rng": rng, "settings": settings, "classes": classes,
                "pretrained": pretrained}

    def save_interrupted(step):
        state = snapshot(epoch, step)
        if is_main:
            save_checkpoint(run_dir / "checkpoints" / "interrupted.pt", state)
            print(f"stopped by signal {stop.signal} in epoch {epoch + 1} after step {step}; checkpoint written, "
                  "a rerun resumes from here", flush=True)

    for epoch in range(start_epoch, settings["epochs"]):
        started = time.time()
        train_set.set_epoch(epoch)
        train_loader.sampler.set_epoch(epoch)
        first_step = start_step if epoch == start_epoch else 0
        train_loader.sampler.skip = first_step * batch_size
        totals, finished = train_one_epoch(ddp_model, train_loader, optimizer, settings, base_lr, epoch, device,
                                           scaler, stop, show_bar=is_main and sys.stderr.isatty(),
                                           first_step=first_step, on_stop=save_interrupted)
        train_loader.sampler.skip = 0
        if not finished:
            break
        probabilities, labels, _ = evaluate_loader(model, val_loader, settings, device, world_size)
        val_top1 = (probabilities.argmax(1) == labels).float().mean().item() if len(labels) else 0.0
        state = snapshot(epoch + 1, 0)
        if is_main:
            save_checkpoint(run_dir / "checkpoints" / f"epoch_{epoch + 1:04d}.pt", state)
            (run_dir / "checkpoints" / "interrupted.pt").unlink(missing_ok=True)
            if val_top1 > best:
                best = val_top1
                save_checkpoint(run_dir / "checkpoints" / "best.pt", state)
            for old in checkpoint_paths(run_dir)[:-settings["keep_checkpoints"]]:
                old.unlink()
            record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                      "train_loss": totals["loss"] / max(totals["seen"], 1),
                      "train_top1": totals["correct"] / max(totals["seen"], 1), "val_top1": val_top1,
                      "seconds": round(time.time() - started, 2)}
            with open(run_dir / "log.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
        if world_size > 1:
            dist.barrier()
        if stop.requested():  # the epoch's checkpoint is written: nothing more to save
            if is_main:
                print(f"stopped by signal {stop.signal} after epoch {epoch + 1}", flush=True)
            break
    else:
        if is_main:
            save_checkpoint(run_dir / "final.pt", {"model": model.state_dict(), "epoch": settings["epochs"],
                                                   "settings": settings, "classes": classes,
                                                   "pretrained": pretrained})
            print(f"trained {settings['arch']} {settings['mode']} for {settings['epochs']} epochs → "
                  f"{run_dir / 'final.pt'}", flush=True)
    if world_size > 1:
        dist.destroy_process_group()
    return 0


def gather_rng_states(world_size):
    """Every rank's torch RNG state (dropout draws), so a resumed run continues each rank's stream."""
    state = torch.get_rng_state()
    if world_size == 1:
        return [state]
    states = [None] * world_size
    dist.all_gather_object(states, state)
    return states


def _log_lines(run_dir):
    path = Path(run_dir) / "log.jsonl"
    return path.read_text().splitlines() if path.is_file() else []


def build_parser():
    parser = argparse.ArgumentParser(prog="torchrun … -m train.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", required=True, help="the run's recipe as JSON (config.yaml recipes.<model>)")
    parser.add_argument("--mode", required=True, choices=("rgb", "flow"))
    parser.add_argument("--train-list", required=True, help="mmaction2 rawframes (rgb) or flow list for training")
    parser.add_argument("--val-list", required=True, help="list scored after each epoch (efficient mode)")
    parser.add_argument("--root", required=True, help="rawframes root (rgb) or flow root (flow)")
    parser.add_argument("--naming", default="mmaction", help="frame naming of the tree under --root "
                        "(prep.base.frame_source.NAMINGS; the rule passes frames.naming or flow.naming)")
    parser.add_argument("--classes", required=True, help="label_map.txt: one class per line")
    parser.add_argument("--run-dir", required=True, help="checkpoints, log.jsonl and final.pt go here")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's choice)")
    parser.add_argument("--pretrained", metavar="PATH",
                        help="the recipe's pretrained weights, fetched (the rule pretrained_weights); loaded into a "
                             "fresh run only")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except PretrainedError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file (run the data preparation first: snakemake "
              "data/<dataset>/check.txt, or check the path)", file=sys.stderr, flush=True)
        return 2
    except OSError as error:
        if not is_disk_full(error):
            raise
        print(f"error: {disk_full_message(error)}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
