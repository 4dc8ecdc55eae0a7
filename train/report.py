"""Report artefacts: the results table, training curves, per-class accuracy, dataset statistics and flow samples.

    python -m train.report table results/*.json --csv report/results.csv --html report/results.html
    python -m train.report curves work/RUN/log.jsonl --title RUN --out report/curves/RUN.png
    python -m train.report classes results/RUN.json --out report/classes/RUN.png
    python -m train.report dataset data/DS/annotations/manifest.parquet --plot DS.png --html DS.html
    python -m train.report flow data/DS/annotations/manifest.parquet --frames data/DS/rawframes \\
        --flow data/DS/flow --out report/flow/DS.png

Each verb writes PNG (matplotlib, Agg), HTML or CSV files that `snakemake --report` collects
(workflow/rules/report.smk); every verb also runs alone, without Snakemake.
"""
import argparse
import html
import json
import sys
from pathlib import Path

import numpy as np

from prep.base import arguments
from prep.base.errors import UserError
from prep.base.frame_source import FrameError, open_frames, recorded_namings
from prep.base.optical_flow import dequantize
from prep.base.trees import tree_conventions

TEST_MODES = ("accurate", "efficient")
METRICS = ("top1", "top5", "mean_class_accuracy")
MODE_ORDER = {"rgb": 0, "flow": 1, "joint": 2}


class ReportError(Exception):
    """An input the report cannot use (missing or malformed file): printed as one line."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error})") from None


def _save(fig, out):
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)


def _html_page(title, body):
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>\n"
            "<style>body{font-family:sans-serif;margin:1em} table{border-collapse:collapse} "
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right} th{background:#eee}</style>"
            f"</head><body>\n<h2>{html.escape(title)}</h2>\n{body}\n</body></html>\n")


# --- results table -------------------------------------------------------------------------------------------------


def results_table(paths):
    """One row per results JSON (model × dataset × mode), accurate and efficient test modes side by side."""
    import pandas as pd

    rows = []
    for path in paths:
        record = _read_json(path)
        row = {k: record.get(k) for k in ("model", "dataset", "mode", "num_videos", "num_classes")}
        for test_mode in TEST_MODES:
            scores = record.get(test_mode) or {}
            for metric in METRICS:
                row[f"{test_mode}_{metric}"] = scores.get(metric)
        rows.append(row)
    rows.sort(key=lambda r: (str(r["dataset"]), str(r["model"]), MODE_ORDER.get(r["mode"], 3)))
    columns = ["model", "dataset", "mode"] + [f"{t}_{m}" for t in TEST_MODES for m in METRICS] + \
        ["num_videos", "num_classes"]
    return pd.DataFrame(rows, columns=columns)


def reproduction_table(paths):
    """Every published seed row (train/published.csv) beside our result for it, if there is one: top-1/top-5 in
    percent, the difference in points, ``flagged`` beyond train.published.MARGIN, and the protocol differences."""
    import pandas as pd
    from train.published import compare, published_rows

    rows = published_rows()
    ours = {}
    for path in paths:
        record = _read_json(path)
        for found in record.get("published") or compare(record, rows):
            ours[(record["model"], record["dataset"], record["mode"], found["seed"])] = (record, found)
    table = []
    for row in rows:
        record, found = ours.get((row["model"], row["dataset"], row["mode"], row["seed"]), (None, None))
        scores = (record or {}).get(row["test_mode"]) or {}
        table.append({"seed": row["seed"], "model": row["model"], "dataset": row["dataset"], "mode": row["mode"],
                      "test_mode": row["test_mode"], "published_top1": float(row["top1"]),
                      "published_top5": float(row["top5"]) if row["top5"] else None,
                      "top1": scores["top1"] * 100 if "top1" in scores else None,
                      "top5": scores["top5"] * 100 if "top5" in scores else None,
                      "difference_top1": found["difference_top1"] if found else None,
                      "flagged": bool(found and found["flagged"]),
                      "protocol_differences": "; ".join(found["protocol_differences"]) if found else "",
                      "source": row["source"]})
    return pd.DataFrame(table)


def run_table(args):
    from train.published import MARGIN

    table = results_table(args.results)
    reproduction = reproduction_table(args.results)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False, float_format="%.4f")
    if args.html:
        flagged = reproduction[reproduction["flagged"]]
        body = ("<p>Accurate: the recipe's test views × crops, probabilities averaged (the headline numbers); "
                "efficient: one centre clip. Joint: weighted fusion of the rgb and flow streams.</p>\n"
                + table.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="–")
                + f"<h3>Reproduction: the seeds' published numbers</h3>\n<p>Top-1/top-5 in percent on the published "
                f"row's test mode; rows off by more than {MARGIN:g} top-1 points are flagged ({len(flagged)} "
                "flagged); empty: not run here.</p>\n"
                + reproduction.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="–"))
        Path(args.html).write_text(_html_page("Results: every model × dataset × mode", body))
    print(f"{len(table)} results → {args.csv}")
    return 0


# --- training curves -----------------------------------------------------------------------------------------------


def read_log(path):
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no training log (train.train writes one JSON line per epoch there)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise ReportError(f"{path}:{number}: not a JSON line") from None
    # a resumed run may repeat an epoch: keep the last record of each
    return sorted({r["epoch"]: r for r in records}.values(), key=lambda r: r["epoch"])


def plot_curves(records, out, title):
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [r["epoch"] for r in records]
    loss_ax.plot(epochs, [r.get("train_loss") for r in records], marker=".", label="train loss")
    if any("val_loss" in r for r in records):
        loss_ax.plot(epochs, [r.get("val_loss") for r in records], marker=".", label="validation loss")
    loss_ax.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss")
    acc_ax.plot(epochs, [r.get("train_top1") for r in records], marker=".", label="train top-1")
    acc_ax.plot(epochs, [r.get("val_top1") for r in records], marker=".", label="validation top-1")
    acc_ax.set(xlabel="epoch", ylabel="top-1 accuracy", ylim=(-0.02, 1.02), title=f"{title}: accuracy")
    if any("lr" in r for r in records):
        lr_ax = acc_ax.twinx()
        lr_ax.plot(epochs, [r.get("lr") for r in records], color="grey", linestyle=":", label="learning rate")
        lr_ax.set_ylabel("learning rate", color="grey")
        lr_ax.tick_params(axis="y", colors="grey")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if not records:
        fig.suptitle(f"{title}: no epoch logged")
    _save(fig, out)


def run_curves(args):
    records = read_log(args.log)
    plot_curves(records, args.out, args.title or Path(args.log).parent.name)
    print(f"{len(records)} epochs → {args.out}")
    return 0


# --- per-class accuracy and confusion matrix -----------------------------------------------------------------------


def plot_classes(record, out):
    plt = _pyplot()
    classes = [str(c) for c in record.get("classes") or []]
    matrix = np.asarray(record.get("confusion_matrix") or [], dtype=float)
    per_class = record.get("per_class_accuracy") or []
    if isinstance(per_class, dict):
        per_class = [per_class.get(c, np.nan) for c in classes]
    n = len(classes) or len(per_class) or len(matrix)
    classes = classes or [str(i) for i in range(n)]
    title = f"{record.get('model')} {record.get('dataset')} {record.get('mode')}"
    side = min(4 + 0.35 * n, 40)
    fig, (bar_ax, cm_ax) = plt.subplots(1, 2, figsize=(2 * side + 2, side),
                                        gridspec_kw={"width_ratios": [1, 1.25]})
    positions = np.arange(n)
    bar_ax.barh(positions, per_class, color="tab:blue")
    bar_ax.set(xlim=(0, 1), xlabel="accuracy", title=f"{title}: per-class accuracy")
    bar_ax.set_yticks(positions, classes if n <= 120 else [""] * n, fontsize="small")
    bar_ax.invert_yaxis()
    bar_ax.grid(axis="x", alpha=0.3)
    if matrix.size:
        totals = matrix.sum(axis=1, keepdims=True)
        normalized = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        image = cm_ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=cm_ax, fraction=0.046, pad=0.04, label="fraction of the true class")
        if n <= 30:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        cm_ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize="small",
                                   color="white" if normalized[i, j] > 0.5 else "black")
        labels = classes if n <= 120 else [""] * n
        cm_ax.set_xticks(positions, labels, rotation=90, fontsize="small")
        cm_ax.set_yticks(positions, labels, fontsize="small")
    cm_ax.set(xlabel="predicted", ylabel="true", title=f"{title}: confusion matrix (top-1 {record.get('top1', 0):.3f})")
    _save(fig, out)


def run_classes(args):
    record = _read_json(args.result)
    plot_classes(record, args.out)
    print(f"{record.get('model')} {record.get('dataset')} {record.get('mode')} → {args.out}")
    return 0


# --- dataset statistics --------------------------------------------------------------------------------------------


def read_manifest(path):
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "manifest.parquet"
    if not path.is_file():
        raise ReportError(f"{path}: no manifest (written by `python -m prep annotations`)")
    return pd.read_parquet(path)


def split_counts(manifest):
    """Videos per class and split (``split_<k>`` columns: train / test / other)."""
    import pandas as pd

    columns = sorted(c for c in manifest.columns if c.startswith("split_"))
    tables = {}
    for column in columns:
        usable = manifest[manifest["status"] == "ok"]
        subset = usable[column].replace("", "unused").fillna("unused")
        tables[column] = pd.crosstab(usable["class_name"], subset)
    return tables


def plot_dataset(manifest, out, title):
    plt = _pyplot()
    counts = split_counts(manifest)
    classes = sorted(manifest["class_name"].unique())
    n = len(classes)
    width = min(6 + 0.25 * n, 60)
    fig, (count_ax, hist_ax) = plt.subplots(2, 1, figsize=(width, 8), gridspec_kw={"height_ratios": [1.3, 1]})
    if counts:
        column, table = next(iter(counts.items()))
        table = table.reindex(classes, fill_value=0)
        bottom = np.zeros(n)
        for subset in [s for s in ("train", "test") if s in table] + [s for s in table if s not in ("train", "test")]:
            count_ax.bar(range(n), table[subset].to_numpy(), bottom=bottom, label=subset)
            bottom += table[subset].to_numpy()
        count_ax.legend(title=column, fontsize="small")
    problems = manifest["status"] != "ok"
    if problems.any():
        bad = manifest[problems].groupby("class_name").size().reindex(classes, fill_value=0).to_numpy()
        count_ax.bar(range(n), bad, bottom=bottom if counts else 0, color="tab:red", label="missing / quarantined")
        count_ax.legend(fontsize="small")
    count_ax.set_xticks(range(n), classes if n <= 150 else [""] * n, rotation=90, fontsize="small")
    count_ax.set(ylabel="videos", title=f"{title}: videos per class and split ({len(manifest)} videos, "
                                        f"{int(problems.sum())} unusable)")
    frames = manifest["n_frames"].dropna().astype(int) if "n_frames" in manifest else []
    if len(frames):
        hist_ax.hist(frames, bins=min(50, max(5, len(set(frames)))), color="tab:green")
    hist_ax.set(xlabel="frames per video", ylabel="videos", title=f"{title}: frame counts")
    hist_ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, out)


def dataset_html(manifest, title):
    import pandas as pd

    usable = manifest["status"] == "ok"
    parts = [f"<p>{len(manifest)} videos in {manifest['class_name'].nunique()} classes; {int(usable.sum())} usable, "
             f"{int((~usable).sum())} missing or quarantined.</p>"]
    for column, table in split_counts(manifest).items():
        summary = table.sum().to_frame("videos").T
        parts.append(f"<h3>Usable videos per subset ({html.escape(column)})</h3>"
                     + summary.to_html(index=False))
    frames = pd.to_numeric(manifest.get("n_frames"), errors="coerce").dropna() if "n_frames" in manifest else []
    if len(frames):
        parts.append(f"<p>Frames per video: min {int(frames.min())}, median {int(frames.median())}, "
                     f"max {int(frames.max())}.</p>")
    reasons = manifest.loc[~usable, "status"].str.split(":").str[0]
    if (~usable).any():
        parts.append("<h3>Missing and quarantined videos by reason</h3>"
                     + reasons.value_counts().rename_axis("kind").to_frame("videos").to_html())
        problem_columns = [c for c in ("video_id", "class_name", "status", "note", "video_path") if c in manifest]
        parts.append("<h3>Every missing or quarantined video</h3>"
                     + manifest.loc[~usable, problem_columns].to_html(index=False))
    else:
        parts.append("<p>No missing or quarantined videos.</p>")
    return _html_page(f"{title}: dataset statistics", "\n".join(parts))


def run_dataset(args):
    manifest = read_manifest(args.manifest)
    title = args.title or Path(args.manifest).resolve().parent.parent.name
    plot_dataset(manifest, args.plot, title)
    Path(args.html).parent.mkdir(parents=True, exist_ok=True)
    Path(args.html).write_text(dataset_html(manifest, title))
    if args.csv:
        problems = manifest[manifest["status"] != "ok"]
        problems[[c for c in ("video_id", "class_name", "status", "note") if c in problems]].to_csv(args.csv,
                                                                                                      index=False)
    print(f"{len(manifest)} videos → {args.plot}, {args.html}")
    return 0


# --- flow samples --------------------------------------------------------------------------------------------------


def flow_to_rgb(flow_x, flow_y, bound):
    """The HSV colour wheel: hue = direction, value = magnitude (saturated at ``bound`` pixels), full saturation."""
    import cv2

    magnitude = np.hypot(flow_x, flow_y)
    angle = np.degrees(np.arctan2(flow_y, flow_x)) % 360.0  # image coordinates: y down
    hsv = np.zeros(flow_x.shape + (3,), dtype=np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV hue is 0–179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / bound * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(size=101, bound=1.0):
    axis = np.linspace(-bound, bound, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    wheel = flow_to_rgb(x, y, bound)
    wheel[np.hypot(x, y) > bound] = 255
    return wheel


def _read_frame(root, video_id, modality, k, naming):
    """Frame ``k`` of a video (rgb: RGB; flow: x, y planes) through the frame source; None when absent."""
    try:
        with open_frames(root, video_id, modality, naming) as frames:
            return frames.read(k)
    except FrameError:
        return None


def pick_samples(manifest, per_class=1, max_classes=8):
    """The first usable video(s) of up to ``max_classes`` classes (in label order)."""
    usable = manifest[(manifest["status"] == "ok") & (manifest["n_flow"].fillna(0).astype(int) > 0)]
    usable = usable.sort_values(["label", "video_id"])
    picked = []
    for _, group in list(usable.groupby("label", sort=True))[:max_classes]:
        picked.extend(group.head(per_class).to_dict("records"))
    return picked


def plot_flow_samples(manifest, frames_root, flow_root, out, bound=None, per_class=1, max_classes=8, title=""):
    """Sample frames beside their flow; the flow is dequantized with the bound the flow tree's record says
    (``bound``: for a tree without one, default 20)."""
    bound = tree_conventions(flow_root, "flow", bound=bound)["bound"]
    plt = _pyplot()
    samples = pick_samples(manifest, per_class, max_classes)
    rows = max(1, len(samples))
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 0.6]})
    for ax in axes.flat:
        ax.axis("off")
    if not samples:
        axes[0, 0].set_title(f"{title}: no video with flow")
    naming, flow_naming = recorded_namings(manifest.attrs)
    for row, sample in zip(axes, samples):
        index = max(1, int(sample["n_flow"]) // 2)
        start, end = flow_naming.flow_pair(index)
        frame_dir, flow_dir = (sample.get(c) or sample["video_id"] for c in ("frame_dir", "flow_dir"))
        rgb = _read_frame(frames_root, frame_dir, "rgb", start, naming)
        flow = _read_frame(flow_root, flow_dir, "flow", index, flow_naming)
        if rgb is not None:
            row[0].imshow(rgb)
        row[0].set_title(f"{sample['class_name']}: frame {start}", fontsize="small")
        if flow is not None:
            flow_x, flow_y = dequantize(flow[..., 0], bound), dequantize(flow[..., 1], bound)
            # brightness relative to this image's strongest motion (99th percentile), so small motions show
            scale = max(float(np.percentile(np.hypot(flow_x, flow_y), 99)), 0.5)
            row[1].imshow(flow_to_rgb(flow_x, flow_y, scale))
            mean = (float(flow_x.mean()), float(flow_y.mean()))
            row[1].set_title(f"flow {start}→{end}: full brightness = {scale:.1f} px\n"
                             f"(mean {mean[0]:+.2f}, {mean[1]:+.2f} px)", fontsize="small")
        else:
            row[1].set_title("flow not found", fontsize="small")
    axes[0, 2].imshow(colour_wheel(), extent=(-1, 1, 1, -1))
    axes[0, 2].axis("on")
    axes[0, 2].set(xlabel="x", ylabel="y (down)", title="key: hue = direction,\nbrightness = magnitude")
    axes[0, 2].title.set_fontsize("small")
    if title:
        fig.suptitle(f"{title}: sample frames and their TV-L1 flow")
    fig.tight_layout()
    _save(fig, out)
    return samples


def run_flow(args):
    manifest = read_manifest(args.manifest)
    title = args.title or Path(args.manifest).resolve().parent.parent.name
    samples = plot_flow_samples(manifest, args.frames, args.flow, args.out, args.bound, args.per_class,
                                args.max_classes, title)
    print(f"{len(samples)} samples → {args.out}")
    return 0


# --- CLI -----------------------------------------------------------------------------------------------------------


def build_parser():
    parser = arguments.Parser(prog="python -m train.report", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    table = verbs.add_parser("table", help="results table of every results JSON (both test modes): CSV and HTML")
    table.add_argument("results", nargs="+", help="results/<model>_<dataset>_<mode>.json")
    table.add_argument("--csv", required=True)
    table.add_argument("--html")
    table.set_defaults(func=run_table)
    curves = verbs.add_parser("curves", help="training and validation curves of one run (work/<run>/log.jsonl)")
    curves.add_argument("log", help="work/<run>/log.jsonl")
    curves.add_argument("--out", required=True, help="PNG")
    curves.add_argument("--title", help="default: the run directory's name")
    curves.set_defaults(func=run_curves)
    classes = verbs.add_parser("classes", help="per-class accuracy and confusion matrix of one results JSON")
    classes.add_argument("result", help="results/<model>_<dataset>_<mode>.json")
    classes.add_argument("--out", required=True, help="PNG")
    classes.set_defaults(func=run_classes)
    dataset = verbs.add_parser("dataset", help="dataset statistics from the manifest: videos per class and split, "
                                               "frame counts, missing and quarantined videos")
    dataset.add_argument("manifest", help="data/<dataset>/annotations/manifest.parquet (or its directory)")
    dataset.add_argument("--plot", required=True, help="PNG")
    dataset.add_argument("--html", required=True, help="HTML page with the counts and every unusable video")
    dataset.add_argument("--csv", help="CSV of the missing and quarantined videos")
    dataset.add_argument("--title", help="default: the dataset directory's name")
    dataset.set_defaults(func=run_dataset)
    flow = verbs.add_parser("flow", help="sample frames beside their flow in the HSV colour wheel")
    flow.add_argument("manifest", help="data/<dataset>/annotations/manifest.parquet (or its directory)")
    flow.add_argument("--frames", required=True, help="rawframes root (img_*.jpg)")
    flow.add_argument("--flow", required=True, help="flow root (flow_x_*.jpg, flow_y_*.jpg)")
    flow.add_argument("--out", required=True, help="PNG")
    flow.add_argument("--bound", type=arguments.number(above=0), default=None,
                      help="flow quantization bound b of a flow tree without a record (.tree.meta; default 20)")
    flow.add_argument("--per-class", type=arguments.count(1), default=1)
    flow.add_argument("--max-classes", type=arguments.count(1), default=8)
    flow.add_argument("--title")
    flow.set_defaults(func=run_flow)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ReportError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
