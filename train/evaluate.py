"""Scoring, two-stream fusion and the summary table.

    [torchrun --nproc-per-node N] -m train.evaluate score --checkpoint RUN/final.pt --list VAL_LIST --root ROOT \\
        --out RESULT.json --scores RUN/test_scores.npz --model tsn --dataset synthetic
    python -m train.evaluate fuse --rgb RGB.npz --flow FLOW.npz --out RESULT.json --sweep RESULT.sweep.json …
    python -m train.evaluate summary results/*.json --csv results/summary.csv --markdown results/summary.md

Two test modes (train/presets.py): *efficient* (one view, centre crop) and *accurate* (the recipe's views × crops);
the headline top1/top5/mean_class_accuracy are the accurate mode's. Clip scores are averaged per video as the
recipe's ``average_clips`` says — ``prob`` (softmax, then mean) or ``score`` (mean of the logits), as mmaction2's
BaseHead.average_clip (open-mmlab/mmaction2 @4d6c934, mmaction/models/heads/base.py lines 193-226); ``none`` leaves
the logits unaveraged there, which only scores when the head has already merged a video's clips into one score —
mmaction2 0.x's TSN head, whose consensus spans segments × crops (a mean of features before the linear fc: the mean of
the clips' logits), or one clip per video (MindSpore I3D) — so here ``none`` is that: the video's mean logits.

Under torchrun each process scores whole groups of chunks of at most ``eval_batch`` clips (memory stays bounded
whatever the view count), and the per-video scores are summed across processes by video index with one all-reduce
on the process's device — every video has its scores on exactly one process, so the sum is exact and N processes
give the one-process scores bit for bit. ``eval_checkpoint: best`` scores RUN/checkpoints/best.pt instead of the
final weights.
"""
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from prep.base import arguments
from prep.base.atomic import atomic_file
from prep.base.errors import UserError
from prep.base.trees import agree, tree_conventions
from train.data import (ClipChunks, check_list, keep_chunk, normalize_on_device, plan_chunks, release_batch,
                        shard_groups)
from train.presets import clip_bytes, eval_protocol, frame_source, make_dataset
from train.recipe import make_model
from train.utils import (autocast_dtype, fit_loader_memory, git_commit, init_distributed, to_channels_last,
                         use_channels_last)

SUMMARY_COLUMNS = ["model", "dataset", "mode", "top1", "top5", "mean_class_accuracy", "efficient_top1",
                   "num_videos", "num_classes"]
AVERAGE_CLIPS = ("prob", "score", "none")
FUSION_RULES = ("prob", "score")
SWEEP_FLOW_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


class EvaluationError(Exception):
    """An expected problem (a missing best checkpoint, streams that do not match): one line for the user."""


def mean_class_accuracy(predicted, labels):
    """mmaction2's definition (mmaction/evaluation/functional/accuracy.py lines 5-92): the mean over every class
    that occurs among the labels *or the predictions* of hits / labelled videos — a class predicted but never
    labelled counts as 0, a class in neither is left out."""
    present = np.union1d(predicted, labels)
    hits = np.array([np.sum((labels == c) & (predicted == c)) for c in present], dtype=float)
    counts = np.array([np.sum(labels == c) for c in present], dtype=float)
    return float(np.mean(np.divide(hits, counts, out=np.zeros_like(hits), where=counts > 0)))


def metrics(scores, labels, num_classes):
    """top1, top5, mean class accuracy, per-class accuracy and the confusion matrix (rows: true class) of
    (videos, classes) scores."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    ranked = np.argsort(-scores, axis=1, kind="stable")
    predicted = ranked[:, 0]
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    return {"top1": float((predicted == labels).mean()),
            "top5": float((ranked[:, :5] == labels[:, None]).any(axis=1).mean()),
            "mean_class_accuracy": mean_class_accuracy(predicted, labels),
            "per_class_accuracy": per_class.round(6).tolist(), "confusion_matrix": confusion.tolist()}


def clip_scores(logits, average_clips):
    """What a clip contributes to its video's (mean) score: softmax probabilities (prob) or logits (score, none)."""
    if average_clips not in AVERAGE_CLIPS:
        raise EvaluationError(f"average_clips must be one of {', '.join(AVERAGE_CLIPS)}, got {average_clips!r}")
    return logits.softmax(dim=1) if average_clips == "prob" else logits


def versions():
    import cv2
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "pandas": pd.__version__}


def checkpoint_to_score(checkpoint):
    """(path, kind) of the weights the run's ``eval_checkpoint`` asks for; ``checkpoint`` is the run's final.pt."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    kind = state["settings"].get("eval_checkpoint", "final")
    if kind == "final":
        return Path(checkpoint), state
    if kind != "best":
        raise EvaluationError(f"{checkpoint}: eval_checkpoint must be final or best, got {kind!r}")
    best = Path(checkpoint).parent / "checkpoints" / "best.pt"
    if not best.is_file():
        raise EvaluationError(f"{best}: no best checkpoint (eval_checkpoint: best needs the run's validation)")
    return best, torch.load(best, map_location="cpu", weights_only=False)


@torch.no_grad()
def score_dataset(model, dataset, settings, num_classes, device, eval_batch, rank=0, world_size=1, workers=0,
                  show_bar=False, accurate=False, processes=1):
    """Per-video scores (videos, classes) of a test dataset, every process holding the full result; chunks of at
    most ``eval_batch`` clips, in the recipe's AMP (``amp: auto`` = bf16/fp16 on a GPU, as training)."""
    from tqdm import tqdm

    average_clips = settings["average_clips"]
    per_video = dataset.clips_per_video
    groups = plan_chunks(len(dataset), per_video, eval_batch)
    chunk_bytes = eval_batch * clip_bytes(settings, True, accurate) // per_video  # a chunk: ≤ eval_batch clips
    workers, prefetch = fit_loader_memory(chunk_bytes, workers, 2, settings.get("loader_memory_gb", "auto"),
                                          processes, "evaluation loader")
    loader = DataLoader(ClipChunks(dataset, shard_groups(groups, rank, world_size)), batch_size=None,
                        collate_fn=keep_chunk, num_workers=workers, pin_memory=device.type == "cuda",
                        prefetch_factor=prefetch if workers else None)
    sums = torch.zeros((len(dataset), num_classes), device=device)
    seen = torch.zeros(len(dataset), dtype=torch.int64, device=device)
    amp_dtype = autocast_dtype(settings.get("amp"), device)
    model.eval()
    for chunk in tqdm(loader, disable=not show_bar, leave=False, mininterval=2.0):
        clips, owners = chunk
        clips = normalize_on_device(clips.to(device, non_blocking=True), settings["mode"], settings["normalize"])
        release_batch(chunk)  # normalised into new memory: the worker may write the chunk's memory again
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(clips)
        scores = clip_scores(logits.float(), average_clips)
        start = 0  # a chunk holds runs of whole videos, or one part of a video
        for video, count in zip(*(t.tolist() for t in torch.unique_consecutive(owners, return_counts=True))):
            sums[video] += scores[start:start + count].sum(dim=0)
            seen[video] += count
            start += count
    if world_size > 1:  # each video is scored on one process only: the sum over processes is exact
        dist.all_reduce(sums)
        dist.all_reduce(seen)
    if not bool((seen == per_video).all()):
        raise RuntimeError(f"evaluation lost clips: {int((seen != per_video).sum())} videos incomplete")
    return (sums / per_video).cpu()


def protocol_record(state, kind, settings, tree):
    """What a reader needs to tell two results apart: the training's run_info, the checkpoint, the test protocol, and
    the tree scored (its record, :mod:`prep.base.trees`: names, storage, frame size; flow: algorithm, parameters,
    backend, bound)."""
    run_info = dict(state.get("run_info") or {})
    return {**run_info, "checkpoint": {"kind": kind, "epoch": state.get("epoch")},
            "test": {name: eval_protocol(settings, accurate) for name, accurate in (("efficient", False),
                                                                                   ("accurate", True))},
            "average_clips": settings["average_clips"], "frame_naming": tree["naming"], "tree": tree,
            "flow": {key: tree.get(key) for key in ("algorithm", "parameters", "backend", "bound")}
            if settings["mode"] == "flow" else None,
            "git_commit": run_info.get("git_commit") or git_commit(), "evaluated_at_commit": git_commit()}


def score_checkpoint(checkpoint, list_path, root, workers=2, eval_batch=None, naming=None, rank=0,
                     world_size=1, device=None):
    """Efficient and accurate per-video scores of a run on a list:
    (settings, classes, video_ids, labels, {mode: (scores, seconds)}, (state, kind, tree)). ``tree``: the
    conventions of the tree under ``root`` (its record; ``naming`` for a tree without one), which must be those the
    run was trained on."""
    path, state = checkpoint_to_score(checkpoint)
    kind = "best" if path.name == "best.pt" else "final"
    settings, classes = state["settings"], state["classes"]
    tree = tree_conventions(root, settings["mode"], naming=naming)
    trained_on = (state.get("run_info") or {}).get("tree")
    if trained_on:
        agree(settings["mode"], trained_on, tree, f"{path} (the tree it was trained on)", f"the tree at {root}")
    naming = tree["naming"]
    device = device or torch.device("cpu")
    model = make_model(settings, len(classes))
    model.load_state_dict(state["model"])
    model.to(device)
    if use_channels_last(settings, device):  # as training ran it
        to_channels_last(model)
    eval_batch = eval_batch or settings["eval_batch"]
    items = check_list(list_path, len(classes), frame_source(settings, root, naming))  # one line, before scoring
    outputs = {}
    for name, accurate in (("efficient", False), ("accurate", True)):
        if accurate and eval_protocol(settings, True) == eval_protocol(settings, False):
            outputs[name] = outputs["efficient"]  # the same protocol; do not score twice
            continue
        dataset = make_dataset(settings, items, root, test_mode=True, accurate=accurate, naming=naming)
        started = time.time()
        scores = score_dataset(model, dataset, settings, len(classes), device, eval_batch, rank, world_size,
                               workers, show_bar=rank == 0 and sys.stderr.isatty(), accurate=accurate,
                               processes=world_size)
        outputs[name] = (scores.numpy(), time.time() - started)
    video_ids = [item[0] for item in dataset.items]
    labels = np.array([item[2] for item in dataset.items], dtype=np.int64)
    return settings, classes, video_ids, labels, outputs, (state, kind, tree)


def result_record(model, dataset, mode, classes, efficient, accurate, extra):
    """The results JSON; ``published``: the seeds' numbers for this row and our difference (train/published.py)."""
    from train.published import compare

    headline = {k: accurate[k] for k in ("top1", "top5", "mean_class_accuracy")}
    record = {"model": model, "dataset": dataset, "mode": mode, **headline,
              "efficient": {k: efficient[k] for k in ("top1", "top5", "mean_class_accuracy")},
              "accurate": {k: accurate[k] for k in ("top1", "top5", "mean_class_accuracy")},
              "num_classes": len(classes), "classes": classes,
              "per_class_accuracy": dict(zip(classes, accurate["per_class_accuracy"])),
              "confusion_matrix": accurate["confusion_matrix"], **extra}
    return {**record, "published": compare(record), "versions": versions()}


def write_json(path, record):
    with atomic_file(path) as handle:
        handle.write(json.dumps(record, indent=2) + "\n")


def save_scores(path, video_ids, labels, efficient, accurate, classes, settings):
    with atomic_file(path, "wb") as handle:  # a file object: np.savez adds no ".npz" to the temporary's name
        np.savez(handle, video_ids=np.array(video_ids), labels=labels, efficient=efficient, accurate=accurate,
                 classes=np.array(classes), settings=np.array(json.dumps(settings, sort_keys=True)))


def run_score(args):
    started = time.time()
    context = init_distributed()
    rank, world_size, device = context.rank, context.world_size, context.device
    try:
        settings, classes, video_ids, labels, outputs, (state, kind, tree) = score_checkpoint(
            args.checkpoint, args.list, args.root, args.workers, args.eval_batch, args.naming, rank, world_size,
            device)
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank != 0:
        return 0
    efficient = metrics(outputs["efficient"][0], labels, len(classes))
    accurate = metrics(outputs["accurate"][0], labels, len(classes))
    if args.scores:
        save_scores(args.scores, video_ids, labels, outputs["efficient"][0], outputs["accurate"][0], classes,
                    settings)
    train_log = Path(args.checkpoint).parent / "log.jsonl"
    train_seconds = sum(json.loads(line)["seconds"] for line in train_log.read_text().splitlines()) \
        if train_log.is_file() else None
    record = result_record(args.model, args.dataset, settings["mode"], classes, efficient, accurate, {
        "num_videos": len(labels), "checkpoint": str(args.checkpoint), "config": settings,
        "protocol": {**protocol_record(state, kind, settings, tree),
                     "eval_processes": world_size},
        "timings": {"train_seconds": train_seconds, "eval_seconds": round(time.time() - started, 2),
                    "efficient_seconds": round(outputs["efficient"][1], 2),
                    "accurate_seconds": round(outputs["accurate"][1], 2),
                    "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
                    if device.type == "cuda" else None}})
    write_json(args.out, record)
    print(f"{args.model} {args.dataset} {settings['mode']}: top1 {accurate['top1']:.3f} "
          f"(efficient {efficient['top1']:.3f}) on {len(labels)} videos → {args.out}")
    return 0


def load_scores(path):
    data = np.load(path, allow_pickle=False)
    scores = {k: data[k] for k in data.files}
    scores["settings"] = json.loads(str(scores["settings"])) if "settings" in scores else {}
    return scores


def align_streams(rgb, flow):
    """Row order of the flow scores that matches the rgb videos; EvaluationError when they scored different
    videos or disagree on labels."""
    rgb_ids, flow_ids = list(rgb["video_ids"]), list(flow["video_ids"])
    if set(rgb_ids) != set(flow_ids):
        only_rgb, only_flow = sorted(set(rgb_ids) - set(flow_ids)), sorted(set(flow_ids) - set(rgb_ids))
        raise EvaluationError(f"the streams scored different videos: {len(only_rgb)} only in rgb {only_rgb[:5]}, "
                              f"{len(only_flow)} only in flow {only_flow[:5]}")
    position = {v: i for i, v in enumerate(flow_ids)}
    order = [position[v] for v in rgb_ids]
    if not np.array_equal(rgb["labels"], flow["labels"][order]):
        raise EvaluationError("the streams disagree on labels of the same videos (different label maps?)")
    return order


def fusion_of(rgb, flow, weights=None, rule=None, fallback_weights=None):
    """({rgb: w, flow: w}, rule): the command line's, else the recipe's ``fusion`` (both streams must agree), else
    ``fallback_weights`` (config.yaml's ``fusion:``) with rule ``prob``."""
    recipe = rgb.get("settings", {}).get("fusion")
    other = flow.get("settings", {}).get("fusion")
    if recipe and other and other != recipe:
        raise EvaluationError(f"the rgb and flow recipes ask for different fusion: {recipe} vs {other}")
    recipe = recipe or other or {}
    weights = {"rgb": weights[0], "flow": weights[1]} if weights else recipe.get("weights")
    if not weights and fallback_weights:
        weights = {"rgb": fallback_weights[0], "flow": fallback_weights[1]}
    rule = rule or recipe.get("rule", "prob")
    if not weights:
        raise EvaluationError("no fusion weights: set the recipe's fusion: {weights: {rgb: W, flow: W}} or pass "
                              "--weights")
    if rule not in FUSION_RULES:
        raise EvaluationError(f"fusion rule must be one of {', '.join(FUSION_RULES)}, got {rule!r}")
    return {"rgb": float(weights["rgb"]), "flow": float(weights["flow"])}, rule


def fuse_scores(rgb, flow, weights, rule="prob"):
    """Two streams' per-video scores, matched by video id, fused by ``rule``:

    * ``score`` — Σ w · the scores as each stream's average_clips left them (mmaction2
      tools/analysis_tools/report_accuracy.py lines 57-64, get_weighted_score); with logits (``average_clips: score``
      or ``none``) and weights 1 : 1 the sum of the two models' logits, MindSpore I3D's eval_joint
      (mindspore-ai/models @eab643f research/cv/I3D/eval.py lines 331-334: ``logits = logits_flow + logits_rgb``,
      then argmax); both streams must have averaged their clips alike;
    * ``prob`` — Σ w · class probabilities: scores that are logits go through a softmax first (report_accuracy.py
      ``--apply-softmax``, lines 50-55), probabilities (``average_clips: prob``) are used as they are.

    Divided by Σ w (the ranking is that of the plain weighted sum). Returns ({mode: fused}, labels, video ids).
    """
    order = align_streams(rgb, flow)
    averages = {name: stream.get("settings", {}).get("average_clips", "prob")
                for name, stream in (("rgb", rgb), ("flow", flow))}
    if rule == "score" and averages["rgb"] != averages["flow"]:
        raise EvaluationError(f"fusion rule 'score' adds like to like, but rgb averaged clips by {averages['rgb']!r} "
                              f"and flow by {averages['flow']!r}; use rule prob or the same average_clips")
    w_rgb, w_flow = (weights["rgb"], weights["flow"]) if isinstance(weights, dict) else weights

    def prepared(scores, average):
        if rule == "prob" and average != "prob":
            return torch.from_numpy(np.asarray(scores, dtype=np.float32)).softmax(dim=-1).numpy()
        return scores

    fused = {}
    for mode in ("efficient", "accurate"):
        a, b = prepared(rgb[mode], averages["rgb"]), prepared(flow[mode][order], averages["flow"])
        if a.shape != b.shape:
            raise EvaluationError(f"{mode}: rgb scores {a.shape} and flow scores {b.shape} cannot be fused")
        fused[mode] = (w_rgb * a + w_flow * b) / (w_rgb + w_flow)
    return fused, rgb["labels"], list(rgb["video_ids"])


def fusion_sweep(rgb, flow, rule, num_classes):
    """Top-1 and mean class accuracy of the fused streams for a range of flow weights (rgb weight 1)."""
    rows = []
    for w_flow in SWEEP_FLOW_WEIGHTS:
        fused, labels, _ = fuse_scores(rgb, flow, {"rgb": 1.0, "flow": w_flow}, rule)
        row = {"weights": {"rgb": 1.0, "flow": w_flow}}
        for mode in ("efficient", "accurate"):
            result = metrics(fused[mode], labels, num_classes)
            row[mode] = {k: result[k] for k in ("top1", "mean_class_accuracy")}
        rows.append(row)
    best = max(rows, key=lambda r: (r["accurate"]["top1"], r["accurate"]["mean_class_accuracy"]))
    return {"rule": rule, "split": "the list the streams were scored on (the recipe's validation list)",
            "note": "diagnostic: the results JSON keeps the recipe's weights, not the best of this sweep",
            "best": best["weights"], "sweep": rows}


def run_fuse(args):
    rgb, flow = load_scores(args.rgb), load_scores(args.flow)
    weights, rule = fusion_of(rgb, flow, args.weights, args.rule, args.fallback_weights)
    fused, labels, video_ids = fuse_scores(rgb, flow, weights, rule)
    classes = [str(c) for c in rgb["classes"]]
    efficient = metrics(fused["efficient"], labels, len(classes))
    accurate = metrics(fused["accurate"], labels, len(classes))
    record = result_record(args.model, args.dataset, "joint", classes, efficient, accurate, {
        "num_videos": len(labels), "fusion": {"rgb_scores": str(args.rgb), "flow_scores": str(args.flow),
                                              "weights": weights, "rule": rule,
                                              "average_clips": {"rgb": rgb["settings"].get("average_clips"),
                                                                "flow": flow["settings"].get("average_clips")}}})
    write_json(args.out, record)
    if args.sweep:
        write_json(args.sweep, fusion_sweep(rgb, flow, rule, len(classes)))
    print(f"{args.model} {args.dataset} joint: top1 {accurate['top1']:.3f} on {len(labels)} videos → {args.out}")
    return 0


def summary_table(result_paths):
    rows = []
    for path in result_paths:
        record = json.loads(Path(path).read_text())
        rows.append({**{k: record.get(k) for k in SUMMARY_COLUMNS}, "efficient_top1": record["efficient"]["top1"]})
    order = {"rgb": 0, "flow": 1, "joint": 2}
    rows.sort(key=lambda r: (r["dataset"], r["model"], order.get(r["mode"], 3)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def run_summary(args):
    table = summary_table(args.results)
    table.to_csv(args.csv, index=False, float_format="%.4f")
    if args.markdown:
        header = "| " + " | ".join(SUMMARY_COLUMNS) + " |\n|" + "---|" * len(SUMMARY_COLUMNS) + "\n"
        body = "".join("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |\n"
                       for row in table.itertuples(index=False))
        Path(args.markdown).write_text(header + body)
    print(table.to_string(index=False))
    return 0


def build_parser():
    parser = arguments.Parser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    score = verbs.add_parser("score", help="score a checkpoint on a list (efficient and accurate modes); under "
                                           "torchrun each process scores a share")
    score.add_argument("--checkpoint", required=True, type=arguments.file_if_present,
                       help="the run's final.pt (eval_checkpoint: best scores "
                                                          "RUN/checkpoints/best.pt)")
    score.add_argument("--list", required=True, type=arguments.file_if_present,
                       help="rawframes (rgb) or flow list of the test split")
    score.add_argument("--root", required=True, type=arguments.dir_if_present,
                       help="rawframes root (rgb) or flow root (flow)")
    score.add_argument("--out", required=True, type=arguments.output_file, help="results JSON")
    score.add_argument("--scores", type=arguments.output_file, help="per-video scores (.npz) for fusion")
    score.add_argument("--model", required=True, help="model name for the record (tsn, tsm, i3d, …)")
    score.add_argument("--dataset", required=True)
    score.add_argument("--eval-batch", type=arguments.count(1),
                       help="clips per forward pass (default: the recipe's eval_batch)")
    score.add_argument("--workers", type=arguments.count(0), default=2, help="DataLoader workers per process")
    score.add_argument("--naming", default=None, help="frame naming of a tree without a record (.tree.meta, which "
                                                      "says it otherwise; prep.base.frame_source.NAMINGS)")
    score.set_defaults(func=run_score)
    fuse = verbs.add_parser("fuse", help="two-stream fusion of rgb and flow scores")
    fuse.add_argument("--rgb", required=True, type=arguments.file_if_present)
    fuse.add_argument("--flow", required=True, type=arguments.file_if_present)
    fuse.add_argument("--weights", type=arguments.number(minimum=0), nargs=2, metavar=("RGB", "FLOW"),
                      help="override the recipe's fusion weights")
    fuse.add_argument("--rule", choices=FUSION_RULES, help="override the recipe's fusion rule")
    fuse.add_argument("--fallback-weights", type=arguments.number(minimum=0), nargs=2, metavar=("RGB", "FLOW"),
                      help="weights (rule prob) for recipes without their own fusion (config.yaml's fusion:)")
    fuse.add_argument("--out", required=True)
    fuse.add_argument("--sweep", help="also write a fusion-weight sweep (JSON) here")
    fuse.add_argument("--model", required=True)
    fuse.add_argument("--dataset", required=True)
    fuse.set_defaults(func=run_fuse)
    summary = verbs.add_parser("summary", help="one table of every results JSON")
    summary.add_argument("results", nargs="+")
    summary.add_argument("--csv", required=True)
    summary.add_argument("--markdown")
    summary.set_defaults(func=run_summary)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EvaluationError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file (train the model and prepare the dataset first, e.g. "
              "snakemake results/<model>_<dataset>_<mode>.json, or check the path)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
