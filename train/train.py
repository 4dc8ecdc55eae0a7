"""torchrun entry: train one model on one dataset and mode, a checkpoint each epoch, resumable.

    torchrun --standalone --nproc-per-node N -m train.train --settings JSON --train-list L --val-list L \\
        --root FRAMES_OR_FLOW_ROOT --classes label_map.txt --run-dir work/RUN

Cut as torchvision's references/video_classification/train.py: :func:`train_one_epoch` and :func:`main`; the
helpers (distributed set-up, checkpoints, sampler, stop signal, metrics) are in train/utils.py and the learning-rate
schedule in train/schedule.py. DDP over gloo (CPU) or nccl (GPU). On a GPU by default: AMP (bf16 where the GPU has it,
else fp16 with a GradScaler), channels_last for the 2D models, DataLoader workers from the CPUs granted to each
process with pinned memory, persistent workers and prefetching, cuDNN benchmark outside deterministic mode;
``compile: true`` adds torch.compile. A restarted job resumes from the newest checkpoint in RUN/checkpoints; SIGTERM /
SIGUSR1 (SLURM preemption) finish the current step, write a checkpoint and exit cleanly. Rank 0 logs one JSON line per
epoch to RUN/log.jsonl (with the fraction of step time spent waiting for data); the finished model goes to
RUN/final.pt.
"""
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from prep.base import arguments
from prep.base.diskspace import disk_full_message, is_disk_full
from prep.base.errors import UserError
from prep.base.frame_source import VIDEO_DECODERS, FrameError, choose_video_decoder
from prep.base.trees import tree_conventions
from train import utils
from train.data import ListError, check_list, collate_clips, normalize_on_device, release_batch
from train.data.augment import mix_clips, mixed_targets, mixing_rng
from train.models import PretrainedError, apply_pretrained
from train.presets import clip_bytes, frame_source, make_dataset
from train.recipe import RecipeError, make_model, resolve, settings_changes
from train.schedule import make_scheduler

HEAD_PREFIXES = ("fc.", "logits.")
NORM_LAYERS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite: the run stops there (no checkpoint of the diverged weights)."""


def no_decay_parameters(model):
    """Names of the parameters mmaction2's TSMOptimWrapperConstructor trains without weight decay: every parameter of
    a normalisation layer (BatchNorm, SyncBatchNorm, GroupNorm) and the biases of convolutions and linear layers
    (mmaction/engine/optimizers/tsm_optim_wrapper_constructor.py, add_params: ``bn`` and ``*_bias`` groups get
    weight_decay 0)."""
    names = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, NORM_LAYERS):
            names.update(prefix + n for n, _ in module.named_parameters(recurse=False))
        elif isinstance(module, (torch.nn.modules.conv._ConvNd, torch.nn.Linear)) and module.bias is not None:
            names.add(prefix + "bias")
    return names


def parameter_groups(model, settings, lr):
    """Parameter groups with the recipe's multipliers: the head's weights ×head_lr_mult, its bias
    ×head_bias_lr_mult without weight decay (mmaction2 / PaddleVideo TSM's fc_lr5); ``bn_weight_decay: false``
    takes weight decay off normalisation layers and biases (see :func:`no_decay_parameters`);
    ``trainable_prefixes`` freezes every parameter whose name starts with none of them (MindSpore-I3D fine-tuning:
    logits, Mixed_5)."""
    prefixes = settings.get("trainable_prefixes")
    no_decay = set() if settings.get("bn_weight_decay", True) else no_decay_parameters(model)
    groups = {"body": [], "body_no_decay": [], "head_weight": [], "head_bias": []}
    for name, parameter in model.named_parameters():
        if prefixes and not name.startswith(tuple(prefixes)):
            parameter.requires_grad_(False)
            continue
        if name.startswith(HEAD_PREFIXES):
            groups["head_bias" if name.endswith(".bias") else "head_weight"].append(parameter)
        else:
            groups["body_no_decay" if name in no_decay else "body"].append(parameter)
    if prefixes and not any(groups.values()):
        raise ValueError(f"trainable_prefixes {prefixes} match no parameter of {settings['arch']}")
    decay = settings["weight_decay"]
    specs = {"body": (1.0, decay), "body_no_decay": (1.0, 0.0),
             "head_weight": (settings.get("head_lr_mult", 1.0), decay),
             "head_bias": (settings.get("head_bias_lr_mult", 1.0),
                           decay if settings.get("head_bias_weight_decay", True) else 0.0)}
    return [{"params": params, "lr": lr * specs[name][0], "lr_mult": specs[name][0], "weight_decay": specs[name][1]}
            for name, params in groups.items() if params]


BATCH_POLICIES = ("accumulate", "scale_lr")


def batch_plan(settings, world_size, batch_size=None):
    """How a run meets the total batch its recipe's lr is quoted at (``reference_batch``, e.g. 8 GPUs × 8):
    {batch_policy, accumulate, batch_per_process, total_batch, reference_batch, lr, effective_lr}.

    ``batch_policy: accumulate`` (default): with fewer processes than the reference run, the optimizer steps every
    round(reference / (processes × batch)) batches, so one GPU trains with the seed's total batch at the published lr;
    ``scale_lr``: one batch per step and the lr scaled by total / reference (the linear scaling rule). An explicit
    ``accumulate`` wins over the policy. Whatever rounding leaves, the lr scales linearly with the total batch
    (processes × batch × accumulate)."""
    policy = settings.get("batch_policy") or "accumulate"
    if policy not in BATCH_POLICIES:
        raise ValueError(f"batch_policy must be one of {', '.join(BATCH_POLICIES)}, got {policy!r}")
    batch_size = batch_size or settings["batch_size"]
    reference = settings.get("reference_batch")
    accumulate = settings.get("accumulate")
    if accumulate is None:
        accumulate = max(1, round(reference / (batch_size * world_size))) if reference and policy == "accumulate" else 1
    total = batch_size * world_size * int(accumulate)
    return {"batch_policy": policy, "accumulate": int(accumulate), "batch_per_process": batch_size,
            "total_batch": total, "reference_batch": reference, "lr": settings["lr"],
            "effective_lr": settings["lr"] * total / (reference or total)}


def make_optimizer(model, settings, world_size, batch_size=None):
    """SGD or Adam at the lr of :func:`batch_plan` (the published lr at the reference total batch)."""
    lr = batch_plan(settings, world_size, batch_size)["effective_lr"]
    groups = parameter_groups(model, settings, lr)
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=settings["momentum"]), lr
    if settings["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=lr), lr
    raise ValueError(f"unknown optimizer {settings['optimizer']!r} (sgd, adam)")


def make_loader(dataset, settings, context, shuffle, batch_size, workers, drop_last=False, persistent=True,
                gpu=None, what="training loader"):
    """The DataLoader of a split. On a GPU (``gpu``: default the context's device; a test forces it on the CPU) it
    pins memory and prefetches 4 batches per worker; workers × prefetch are held to ``loader_memory_gb``."""
    sampler = utils.ResumableSampler(dataset, context.world_size, context.rank, shuffle, settings["seed"], drop_last)
    gpu = context.device.type == "cuda" if gpu is None else gpu
    batch_bytes = batch_size * clip_bytes(settings, dataset.sampler.test_mode, accurate=False)
    workers, prefetch = utils.fit_loader_memory(batch_bytes, workers, 4 if gpu else 2,
                                                settings.get("loader_memory_gb", "auto"), context.local_world_size,
                                                what)
    # a private generator: creating an iterator must not draw from the global RNG that dropout uses, or a run
    # resumed mid-epoch would see different dropout masks
    # NVDEC in the workers: CUDA does not survive a fork of a process that has initialised it, so spawn them
    spawn = workers > 0 and getattr(getattr(dataset, "source", None), "video_decoder", "cpu") != "cpu"
    return DataLoader(utils.EpochAwareDataset(dataset), batch_size=batch_size, sampler=sampler, num_workers=workers,
                      multiprocessing_context="spawn" if spawn else None,
                      pin_memory=gpu, drop_last=drop_last, collate_fn=collate_clips,
                      persistent_workers=persistent and workers > 0,
                      prefetch_factor=prefetch if workers > 0 else None,
                      worker_init_fn=utils.ignore_stop_signals,
                      generator=torch.Generator().manual_seed(settings["seed"]))


def train_one_epoch(model, criterion, optimizer, lr_scheduler, data_loader, device, epoch, settings, scaler, stop,
                    meter, first_step=0, on_stop=None, show_bar=False):
    """One pass over the loader (from ``first_step`` when resuming mid-epoch); returns True when the epoch finished,
    False when a stop request ended it (after ``on_stop(steps done)`` wrote a checkpoint).

    With ``accumulate`` N the optimizer steps every N batches on the mean of their gradients (a last, shorter window
    at the epoch's end is averaged over its own batches), and a stop request is honoured only at a window's end, so a
    checkpoint never holds half-accumulated gradients. ``lr_scheduler`` steps once per optimizer step. MixUp / CutMix
    (``mixup_alpha`` / ``cutmix_alpha``) mix the device batch with a generator seeded by (seed, rank, epoch, step);
    their soft targets go through the same cross-entropy (class probabilities as targets).
    """
    model.train()
    if settings.get("norm_eval"):  # mmaction2's norm_eval: BatchNorm uses (and keeps) its running statistics
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    steps = first_step + len(data_loader)
    accumulate = int(settings.get("accumulate") or 1)  # main passes batch_plan's
    if accumulate < 1 or first_step % accumulate:
        raise ValueError(f"accumulate {accumulate}: resuming at step {first_step} is not an accumulation boundary")
    mixing = settings.get("mixup_alpha", 0) or settings.get("cutmix_alpha", 0)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    amp_dtype = utils.autocast_dtype(settings["amp"], device)
    bar = tqdm(data_loader, desc=f"epoch {epoch + 1}/{settings['epochs']}", disable=not show_bar, leave=False,
               mininterval=2.0)
    end = time.perf_counter()
    for step, batch in enumerate(bar, start=first_step):
        clips, labels, _ = batch
        data_seconds = time.perf_counter() - end
        window_start = step - step % accumulate
        window = min(accumulate, steps - window_start)  # batches in this accumulation window
        last_of_window = step + 1 == window_start + window
        if step == window_start:
            optimizer.zero_grad(set_to_none=True)
        clips = normalize_on_device(clips.to(device, non_blocking=True), settings["mode"], settings["normalize"])
        release_batch(batch)  # normalised into new memory: the worker may write this batch's memory again
        labels = labels.to(device, non_blocking=True)
        mixed = None
        if mixing:
            mixed = mix_clips(clips, settings.get("mixup_alpha", 0), settings.get("cutmix_alpha", 0),
                              mixing_rng(settings["seed"], epoch, step, rank))
        if mixed is not None:
            clips = mixed[0]
        sync = last_of_window or not hasattr(model, "no_sync")  # DDP: all-reduce only at the window's end
        with (contextlib.nullcontext() if sync else model.no_sync()):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(clips)
                targets = labels if mixed is None else mixed_targets(labels, mixed[1], mixed[2], logits.shape[1])
                loss = criterion(logits.float(), targets)
            scaler.scale(loss / window if window > 1 else loss).backward()
        if last_of_window:
            if settings["grad_clip"]:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            lr_scheduler.step()
        hard = labels if mixed is None else targets.argmax(1)  # mixed targets: their argmax
        correct = (logits.argmax(1) == hard).sum()
        finite, stop_asked = stop.agree(torch.isfinite(loss.detach()))  # one collective: every rank agrees
        if not finite:
            value = loss.item()
            where = value if not math.isfinite(value) else "not finite on another process"
            raise NonFiniteLoss(f"the training loss is {where} at epoch {epoch + 1}, step {step + 1} of {steps}: the "
                                f"run diverged (learning rate {settings['lr']} too high?); stopped, no final.pt "
                                "written")
        stopping = last_of_window and stop_asked and step + 1 < steps
        now = time.perf_counter()
        meter.update(loss, correct, len(labels), data_seconds, now - end)
        end = now
        if stopping:
            on_stop(step + 1)
            return False
    return True


@torch.no_grad()
def predict(model, loader, settings, device, show_bar=False, desc="eval"):
    """Per-video class probabilities (views averaged as probabilities), labels and dataset indices."""
    model.eval()
    amp_dtype = utils.autocast_dtype(settings.get("amp"), device)
    probabilities, labels, indices = [], [], []
    for loaded in tqdm(loader, desc=desc, disable=not show_bar, leave=False, mininterval=2.0):
        clips, label, index = loaded
        batch, views = clips.shape[:2]
        clips = normalize_on_device(clips.to(device, non_blocking=True).flatten(0, 1), settings["mode"],
                                    settings["normalize"])
        release_batch(loaded)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(clips)
        scores = logits.float().softmax(dim=1).view(batch, views, -1).mean(dim=1)
        probabilities.append(scores.cpu())
        labels.append(label)
        indices.append(index)
    return torch.cat(probabilities), torch.cat(labels), torch.cat(indices)


def evaluate(model, loader, settings, context):
    """Top-1 of the validation list over all processes (DistributedSampler's padding counted once)."""
    parts = utils.gather_objects(predict(model, loader, settings, context.device), context)
    probabilities, labels, indices = (torch.cat([part[i] for part in parts]) for i in range(3))
    first = {}
    for row, index in enumerate(indices.tolist()):
        first.setdefault(index, row)
    rows = torch.tensor(sorted(first.values()), dtype=torch.long)
    return (probabilities[rows].argmax(1) == labels[rows]).float().mean().item() if len(rows) else 0.0


def log_lines(run_dir):
    path = Path(run_dir) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def append_log(run_dir, record):
    with open(Path(run_dir) / "log.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")


def main(args):
    context = utils.init_distributed()
    device = context.device
    settings = resolve(json.loads(args.settings), args.mode)
    if args.threads:
        torch.set_num_threads(args.threads)
    utils.seed_everything(settings["seed"] + context.rank, settings["deterministic"])
    classes = [line.strip() for line in Path(args.classes).read_text().splitlines() if line.strip()]
    run_dir = Path(args.run_dir)

    tree = tree_conventions(args.root, args.mode, naming=args.naming,  # how the tree was made: its record says
                            **({"backend": args.flow_backend} if args.mode == "flow" else {}))
    # every line checked before the first step: a bad label or count is one line now, not a traceback mid-epoch
    decoder = choose_video_decoder(args.video_decoder)  # per job: NVDEC where it exists (auto), else the CPU
    source = frame_source(settings, args.root, tree["naming"])
    train_items, val_items = (check_list(path, len(classes), source) for path in (args.train_list, args.val_list))
    train_set = make_dataset(settings, train_items, args.root, test_mode=False, naming=tree["naming"],
                             video_decoder=decoder)
    val_set = make_dataset(settings, val_items, args.root, test_mode=True, naming=tree["naming"],
                           video_decoder=decoder)
    if len(train_set) == 0:
        raise SystemExit(f"error: {args.train_list}: no training videos")
    batch_size = min(settings["batch_size"], len(train_set) // context.world_size or 1)
    drop_last = len(train_set) >= 2 * batch_size * context.world_size
    workers = utils.loader_workers(settings["data_workers"], device,
                                   utils.cpus_per_process(args.threads, context.local_world_size))
    train_loader = make_loader(train_set, settings, context, True, batch_size, workers, drop_last)
    val_loader = make_loader(val_set, settings, context, False, batch_size, workers,
                             persistent=False, what="validation loader")  # used once an epoch: no idle workers held during training

    model = make_model(settings, len(classes))
    resume_from, state = utils.resume_point(run_dir, warn=print if context.is_main else lambda *a, **k: None)
    if state is not None:
        changes = settings_changes(state.get("settings", {}), settings)
        if state.get("classes") not in (None, classes):
            changes.append(f"the label map {args.classes} differs ({len(state['classes'])} -> {len(classes)} classes)")
        if changes:
            raise utils.ResumeError(f"{resume_from}: the recipe changed since this checkpoint ({'; '.join(changes)}); "
                                    f"restore it, or remove {run_dir / 'checkpoints'} to train anew")
    # before DDP wrapping, and only into a fresh run: a resumed run's checkpoint holds the weights (and their record)
    pretrained = apply_pretrained(model, settings, args.pretrained) if resume_from is None else None
    model.to(device)
    if utils.use_channels_last(settings, device):
        utils.to_channels_last(model)
    if settings.get("sync_bn") and context.world_size > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    plan = batch_plan(settings, context.world_size, batch_size)
    optimizer, effective_lr = make_optimizer(model, settings, context.world_size, batch_size)
    accumulate = plan["accumulate"]
    lr_scheduler = make_scheduler(optimizer, settings, math.ceil(len(train_loader) / accumulate))
    scaler = torch.amp.GradScaler(device.type, enabled=utils.autocast_dtype(settings["amp"], device) == torch.float16)
    start_epoch, start_step = 0, 0
    if resume_from is not None:
        # loaded on the CPU (utils.load_checkpoint): RNG states must stay CPU tensors
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        utils.set_rng_state(rng[context.rank] if len(rng) > context.rank else rng[0], device)
        start_epoch, start_step = state["epoch"], state.get("step", 0)
        pretrained = state.get("run_info", {}).get("pretrained")  # what the run started from, not reloaded
        if context.is_main:
            print(f"resuming from {resume_from} (epoch {start_epoch} + {start_step} steps done)", flush=True)
    train_model = model
    if context.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if settings.get("compile"):
        train_model = torch.compile(train_model)
    criterion = torch.nn.CrossEntropyLoss()  # class indices, or class probabilities (MixUp / CutMix targets)
    stop = utils.StopRequested(context.world_size, device)
    best = max((record.get("val_top1", 0) for record in log_lines(run_dir)), default=-1.0)
    run_info = {"world_size": context.world_size, **plan, "pretrained": pretrained, "git_commit": utils.git_commit(),
                "tree": tree}
    if args.mode == "flow":  # predict recomputes flow for a video with the backend the training data was made by
        run_info["flow_backend"] = tree["backend"]
    if context.is_main and plan["reference_batch"]:
        print(f"batch: {context.world_size} × {batch_size} × accumulate {accumulate} = {plan['total_batch']} "
              f"(reference {plan['reference_batch']}, batch_policy {plan['batch_policy']}), lr {effective_lr:g}",
              flush=True)

    def snapshot(epoch, step):
        rng = utils.gather_objects(utils.rng_state(device), context)
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "lr_scheduler": lr_scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                "step": step, "rng": rng, "settings": settings, "classes": classes,
                "run_info": {**run_info, "epoch": epoch}}

    for epoch in range(start_epoch, settings["epochs"]):
        started = time.time()
        train_loader.dataset.set_epoch(epoch)
        train_loader.sampler.set_epoch(epoch)
        first_step = start_step if epoch == start_epoch else 0
        train_loader.sampler.skip = first_step * batch_size
        meter = utils.EpochMeter(device)

        def save_interrupted(step):
            state = snapshot(epoch, step)
            if context.is_main:
                utils.save_checkpoint(utils.interrupted_path(run_dir), state)
                print(f"stopped by signal {stop.signal} in epoch {epoch + 1} after step {step}; checkpoint written, "
                      "a rerun resumes from here", flush=True)

        finished = train_one_epoch(train_model, criterion, optimizer, lr_scheduler, train_loader, device, epoch,
                                   {**settings, "accumulate": accumulate}, scaler, stop, meter, first_step=first_step, on_stop=save_interrupted,
                                   show_bar=context.is_main and sys.stderr.isatty())
        train_loader.sampler.skip = 0
        if not finished:
            break
        training = meter.summary(context)
        val_top1 = evaluate(model, val_loader, settings, context)
        state = snapshot(epoch + 1, 0)
        if context.is_main:
            utils.save_checkpoint(run_dir / "checkpoints" / f"epoch_{epoch + 1:04d}.pt", state)
            utils.interrupted_path(run_dir).unlink(missing_ok=True)
            if val_top1 > best:
                best = val_top1
                utils.save_checkpoint(run_dir / "checkpoints" / "best.pt", state)
            utils.prune_checkpoints(run_dir, settings["keep_checkpoints"])
            record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **training, "val_top1": val_top1,
                      "seconds": round(time.time() - started, 2)}
            append_log(run_dir, record)
            print(json.dumps(record), flush=True)
        utils.barrier(context)
        if stop.requested():  # the epoch's checkpoint is written: nothing more to save
            if context.is_main:
                print(f"stopped by signal {stop.signal} after epoch {epoch + 1}", flush=True)
            break
    else:
        if context.is_main:
            utils.save_checkpoint(run_dir / "final.pt", {
                "model": model.state_dict(), "epoch": settings["epochs"], "settings": settings, "classes": classes,
                "run_info": {**run_info, "epoch": settings["epochs"]}})
            print(f"trained {settings['arch']} {settings['mode']} for {settings['epochs']} epochs → "
                  f"{run_dir / 'final.pt'}", flush=True)
    utils.close_distributed(context)
    return 0


def build_parser():
    parser = arguments.Parser(prog="torchrun … -m train.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", required=True, help="the run's recipe as JSON (config.yaml recipes.<model>)")
    parser.add_argument("--mode", required=True, choices=("rgb", "flow"))
    parser.add_argument("--train-list", required=True, type=arguments.file_if_present,
                        help="mmaction2 rawframes (rgb) or flow list for training")
    parser.add_argument("--val-list", required=True, type=arguments.file_if_present,
                        help="list scored after each epoch (efficient mode)")
    parser.add_argument("--root", required=True, type=arguments.dir_if_present,
                        help="rawframes root (rgb) or flow root (flow)")
    parser.add_argument("--naming", default=None, help="frame naming of a tree under --root without a record "
                        "(.tree.meta, which says it otherwise; prep.base.frame_source.NAMINGS)")
    parser.add_argument("--video-decoder", choices=VIDEO_DECODERS, default="cpu",
                        help="decoder of a videos storage: cpu (default), nvdec (the GPU's video engines through "
                             "PyAV; an error where there are none) or auto (nvdec where available, else cpu)")
    parser.add_argument("--flow-backend", choices=("opencv", "torch"), default=None,
                        help="flow mode: who computed a flow tree without a record (prep flow --backend; the "
                             "record says it otherwise)")
    parser.add_argument("--classes", required=True, type=arguments.file_if_present,
                        help="label_map.txt: one class per line")
    parser.add_argument("--run-dir", required=True, type=arguments.output_dir,
                        help="checkpoints, log.jsonl and final.pt go here")
    parser.add_argument("--pretrained", metavar="PATH", type=arguments.file_if_present,
                        help="the recipe's pretrained weights, fetched (the rule pretrained_weights); loaded into a "
                             "fresh run only")
    parser.add_argument("--threads", type=arguments.count(1),
                        help="CPUs of this process: torch threads, and on GPU the DataLoader workers (default: "
                             "torch's choice; the CPU affinity split between the node's processes)")
    return parser


def cli(argv=None):
    """Parse the arguments and train; expected problems end as one ``error:`` line."""
    args = build_parser().parse_args(argv)
    try:
        return main(args)
    except (PretrainedError, RecipeError, ListError, utils.ResumeError, NonFiniteLoss, UserError) as error:
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
    sys.exit(cli())
