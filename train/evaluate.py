"""Scoring, two-stream fusion and the summary table.

    python -m train.evaluate score --checkpoint RUN/final.pt --list VAL_LIST --root ROOT --out RESULT.json \\
        --scores RUN/test_scores.npz --model tsn --dataset synthetic
    python -m train.evaluate fuse --rgb RGB.npz --flow FLOW.npz --weights 1 1.5 --out RESULT.json …
    python -m train.evaluate summary results/*.json --csv results/summary.csv --markdown results/summary.md

Two test modes: *efficient* (1 clip, centre crop) and *accurate* (the recipe's test_views × test_crops, scores
averaged as probabilities). The headline top1/top5/mean_class_accuracy are the accurate mode's.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from prep.base.atomic import atomic_file
from train.recipe import make_dataset, make_model
from train.train import predict

SUMMARY_COLUMNS = ["model", "dataset", "mode", "top1", "top5", "mean_class_accuracy", "efficient_top1",
                   "num_videos", "num_classes"]


def metrics(probabilities, labels, num_classes):
    """top1, top5, mean class accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    ranked = np.argsort(-probabilities, axis=1)
    predicted = ranked[:, 0]
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    return {"top1": float((predicted == labels).mean()),
            "top5": float((ranked[:, :5] == labels[:, None]).any(axis=1).mean()),
            "mean_class_accuracy": float(per_class[support > 0].mean()),
            "per_class_accuracy": per_class.round(6).tolist(), "confusion_matrix": confusion.tolist()}


def versions():
    import cv2
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "pandas": pd.__version__}


def score_checkpoint(checkpoint, list_path, root, batch_size=8, workers=2):
    """Efficient and accurate predictions of a checkpoint on a list: (settings, classes, video_ids, results)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    settings, classes = state["settings"], state["classes"]
    model = make_model(settings, len(classes))
    model.load_state_dict(state["model"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    outputs = {}
    for name, accurate in (("efficient", False), ("accurate", True)):
        if accurate and settings["test_views"] == 1 and settings["test_crops"] == "center":
            outputs[name] = outputs["efficient"]  # the same protocol; do not score twice
            continue
        dataset = make_dataset(settings, list_path, root, test_mode=True, accurate=accurate)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
        started = time.time()
        probabilities, labels, _ = predict(model, loader, settings, device, show_bar=sys.stderr.isatty(), desc=name)
        outputs[name] = (probabilities.numpy(), labels.numpy(), time.time() - started)
    video_ids = [item[0] for item in dataset.items]
    return settings, classes, video_ids, outputs


def result_record(model, dataset, mode, classes, efficient, accurate, extra):
    headline = {k: accurate[k] for k in ("top1", "top5", "mean_class_accuracy")}
    return {"model": model, "dataset": dataset, "mode": mode, **headline,
            "efficient": {k: efficient[k] for k in ("top1", "top5", "mean_class_accuracy")},
            "accurate": {k: accurate[k] for k in ("top1", "top5", "mean_class_accuracy")},
            "num_classes": len(classes), "classes": classes,
            "per_class_accuracy": dict(zip(classes, accurate["per_class_accuracy"])),
            "confusion_matrix": accurate["confusion_matrix"], **extra, "versions": versions()}


def write_json(path, record):
    with atomic_file(path) as handle:
        handle.write(json.dumps(record, indent=2) + "\n")


def save_scores(path, video_ids, labels, efficient, accurate, classes):
    with atomic_file(path, "wb") as handle:  # a file object: np.savez adds no ".npz" to the temporary's name
        np.savez(handle, video_ids=np.array(video_ids), labels=labels, efficient=efficient, accurate=accurate,
                 classes=np.array(classes))


def run_score(args):
    started = time.time()
    settings, classes, video_ids, outputs = score_checkpoint(args.checkpoint, args.list, args.root,
                                                             args.batch_size, args.workers)
    labels = outputs["accurate"][1]
    efficient = metrics(outputs["efficient"][0], labels, len(classes))
    accurate = metrics(outputs["accurate"][0], labels, len(classes))
    if args.scores:
        save_scores(args.scores, video_ids, labels, outputs["efficient"][0], outputs["accurate"][0], classes)
    train_log = Path(args.checkpoint).parent / "log.jsonl"
    train_seconds = sum(json.loads(line)["seconds"] for line in train_log.read_text().splitlines()) \
        if train_log.is_file() else None
    record = result_record(args.model, args.dataset, settings["mode"], classes, efficient, accurate, {
        "num_videos": len(labels), "checkpoint": str(args.checkpoint), "config": settings,
        "timings": {"train_seconds": train_seconds, "eval_seconds": round(time.time() - started, 2),
                    "efficient_seconds": round(outputs["efficient"][2], 2),
                    "accurate_seconds": round(outputs["accurate"][2], 2)}})
    write_json(args.out, record)
    print(f"{args.model} {args.dataset} {settings['mode']}: top1 {accurate['top1']:.3f} "
          f"(efficient {efficient['top1']:.3f}) on {len(labels)} videos → {args.out}")
    return 0


def load_scores(path):
    data = np.load(path, allow_pickle=False)
    return {k: data[k] for k in data.files}


def fuse_scores(rgb, flow, weights):
    """Weighted average of the two streams' probabilities, matched by video id (both must score the same videos)."""
    rgb_ids, flow_ids = list(rgb["video_ids"]), list(flow["video_ids"])
    if set(rgb_ids) != set(flow_ids):
        only_rgb, only_flow = sorted(set(rgb_ids) - set(flow_ids)), sorted(set(flow_ids) - set(rgb_ids))
        raise SystemExit(f"error: the streams scored different videos: {len(only_rgb)} only in rgb "
                         f"{only_rgb[:5]}, {len(only_flow)} only in flow {only_flow[:5]}")
    order = [flow_ids.index(v) for v in rgb_ids] if rgb_ids != flow_ids else list(range(len(rgb_ids)))
    if not np.array_equal(rgb["labels"], flow["labels"][order]):
        raise SystemExit("error: the streams disagree on labels of the same videos (different label maps?)")
    w_rgb, w_flow = weights
    fused = {mode: (w_rgb * rgb[mode] + w_flow * flow[mode][order]) / (w_rgb + w_flow)
             for mode in ("efficient", "accurate")}
    return fused, rgb["labels"], rgb_ids


def run_fuse(args):
    rgb, flow = load_scores(args.rgb), load_scores(args.flow)
    fused, labels, video_ids = fuse_scores(rgb, flow, args.weights)
    classes = [str(c) for c in rgb["classes"]]
    efficient = metrics(fused["efficient"], labels, len(classes))
    accurate = metrics(fused["accurate"], labels, len(classes))
    record = result_record(args.model, args.dataset, "joint", classes, efficient, accurate, {
        "num_videos": len(labels), "fusion": {"rgb_scores": str(args.rgb), "flow_scores": str(args.flow),
                                              "weights": {"rgb": args.weights[0], "flow": args.weights[1]},
                                              "method": "weighted average of softmax probabilities"}})
    write_json(args.out, record)
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
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    score = verbs.add_parser("score", help="score a checkpoint on a list (efficient and accurate modes)")
    score.add_argument("--checkpoint", required=True)
    score.add_argument("--list", required=True, help="rawframes (rgb) or flow list of the test split")
    score.add_argument("--root", required=True, help="rawframes root (rgb) or flow root (flow)")
    score.add_argument("--out", required=True, help="results JSON")
    score.add_argument("--scores", help="per-video probabilities (.npz) for fusion")
    score.add_argument("--model", required=True, help="model name for the record (tsn, tsm, i3d, …)")
    score.add_argument("--dataset", required=True)
    score.add_argument("--batch-size", type=int, default=8)
    score.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    score.set_defaults(func=run_score)
    fuse = verbs.add_parser("fuse", help="two-stream fusion of rgb and flow scores")
    fuse.add_argument("--rgb", required=True)
    fuse.add_argument("--flow", required=True)
    fuse.add_argument("--weights", type=float, nargs=2, default=(1.0, 1.0), metavar=("RGB", "FLOW"))
    fuse.add_argument("--out", required=True)
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
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file (train the model and prepare the dataset first, e.g. "
              "snakemake results/<model>_<dataset>_<mode>.json, or check the path)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
