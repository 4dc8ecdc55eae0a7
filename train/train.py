"""torchrun entry: train one model on one dataset and mode, a checkpoint each epoch, resumable.

    torchrun --standalone --nproc-per-node N -m train.train --settings JSON --train-list L --val-list L \\
        --root FRAMES_OR_FLOW_ROOT --classes label_map.txt --run-dir work/RUN

DDP over gloo (CPU) or nccl (GPU); AMP on GPU when the recipe asks. A restarted job resumes from the newest
checkpoint in RUN/checkpoints; SIGTERM / SIGUSR1 (SLURM preemption) finish the current step, write a checkpoint and
exit cleanly. Rank 0 logs one JSON line per epoch to RUN/log.jsonl; the finished model goes to RUN/final.pt.
"""
import argparse
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

from train.data import normalize_on_device
from train.recipe import make_dataset, make_model, resolve


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


def make_optimizer(model, settings, world_size):
    """SGD or Adam; the learning rate scales linearly with the total batch (recipes quote it at reference_batch)."""
    total_batch = settings["batch_size"] * world_size
    lr = settings["lr"] * total_batch / (settings["reference_batch"] or total_batch)
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=settings["momentum"],
                               weight_decay=settings["weight_decay"]), lr
    if settings["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=settings["weight_decay"]), lr
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


def save_checkpoint(path, state):
    """Atomic: a checkpoint half written by a killed job never stands under its name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_classes(path):
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


class StopRequested:
    """SIGTERM / SIGUSR1 set a flag; the loop checkpoints at the next step boundary and exits cleanly."""

    def __init__(self):
        self.signal = None
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self.request)

    def request(self, signum, frame):
        self.signal = signum


def train_one_epoch(model, loader, optimizer, settings, base_lr, epoch, device, scaler, stop, show_bar):
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    totals = {"loss": 0.0, "correct": 0, "seen": 0}
    steps = len(loader)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings["amp"])
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings['epochs']}", disable=not show_bar, leave=False,
               mininterval=2.0)
    for step, (clips, labels, _) in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = base_lr * lr_factor(settings, epoch + step / steps)
        clips = normalize_on_device(clips.to(device, non_blocking=True), settings["mode"], settings["normalize"])
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None and device.type == "cuda"):
            logits = model(clips)
            loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if settings["grad_clip"]:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        scaler.step(optimizer)
        scaler.update()
        totals["loss"] += loss.item() * len(labels)
        totals["correct"] += (logits.argmax(1) == labels).sum().item()
        totals["seen"] += len(labels)
        if stop.signal is not None:
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


def make_loader(dataset, settings, world_size, rank, shuffle, batch_size, drop_last=False):
    sampler = DistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=settings["seed"],
                                 drop_last=drop_last) if world_size > 1 else None
    generator = torch.Generator().manual_seed(settings["seed"])
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=settings["data_workers"], pin_memory=torch.cuda.is_available(),
                      drop_last=drop_last, generator=generator, persistent_workers=False)


def run(args):
    rank, world_size, local_rank, device = setup_distributed()
    settings = resolve(json.loads(args.settings), args.mode)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(settings["seed"] + rank, settings["deterministic"])
    classes = load_classes(args.classes)
    run_dir = Path(args.run_dir)
    is_main = rank == 0

    train_set = make_dataset(settings, args.train_list, args.root, test_mode=False)
    val_set = make_dataset(settings, args.val_list, args.root, test_mode=True)
    if len(train_set) == 0:
        raise SystemExit(f"error: {args.train_list}: no training videos")
    batch_size = min(settings["batch_size"], len(train_set) // world_size or 1)
    train_loader = make_loader(train_set, settings, world_size, rank, shuffle=True, batch_size=batch_size,
                               drop_last=len(train_set) >= 2 * batch_size * world_size)
    val_loader = make_loader(val_set, settings, world_size, rank, shuffle=False, batch_size=batch_size)

    model = make_model(settings, len(classes)).to(device)
    if settings.get("sync_bn") and world_size > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer, base_lr = make_optimizer(model, settings, world_size)
    scaler = torch.amp.GradScaler(device.type, enabled=settings["amp"] == "fp16" and device.type == "cuda")
    start_epoch = 0
    existing = checkpoint_paths(run_dir)
    if existing:
        state = torch.load(existing[-1], map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"]
        if is_main:
            print(f"resuming from {existing[-1]} (epoch {start_epoch} done)", flush=True)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    stop = StopRequested()
    best = max((json.loads(l).get("val_top1", 0) for l in _log_lines(run_dir)), default=-1.0)

    for epoch in range(start_epoch, settings["epochs"]):
        started = time.time()
        train_set.set_epoch(epoch)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        totals, finished = train_one_epoch(ddp_model, train_loader, optimizer, settings, base_lr, epoch, device,
                                           scaler, stop, show_bar=is_main and sys.stderr.isatty())
        if not finished:
            if is_main:  # a partial epoch is redone on resume; the last full epoch's checkpoint stands
                print(f"stopped by signal {stop.signal} during epoch {epoch + 1}; resume continues from the last "
                      "checkpoint", flush=True)
            break
        probabilities, labels, _ = evaluate_loader(model, val_loader, settings, device, world_size)
        val_top1 = (probabilities.argmax(1) == labels).float().mean().item() if len(labels) else 0.0
        if is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                     "epoch": epoch + 1, "settings": settings, "classes": classes}
            save_checkpoint(run_dir / "checkpoints" / f"epoch_{epoch + 1:04d}.pt", state)
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
    else:
        if is_main:
            state = {"model": model.state_dict(), "epoch": settings["epochs"], "settings": settings,
                     "classes": classes}
            save_checkpoint(run_dir / "final.pt", state)
            print(f"trained {settings['arch']} {settings['mode']} for {settings['epochs']} epochs → "
                  f"{run_dir / 'final.pt'}", flush=True)
    if world_size > 1:
        dist.destroy_process_group()
    return 0


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
    parser.add_argument("--classes", required=True, help="label_map.txt: one class per line")
    parser.add_argument("--run-dir", required=True, help="checkpoints, log.jsonl and final.pt go here")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's choice)")
    return parser


def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
