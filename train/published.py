"""The seeds' published numbers (train/published.csv) and how a result compares with them.

One row per published seed row: (model, dataset, mode, test mode) with top-1 / top-5 in percent and where they are
published (file and line). :func:`compare` gives what a results JSON carries under ``published``: each matching
row's numbers, our difference in points, and the protocol differences that explain a gap (upstream weights, test
views, total batch, epochs). The report flags rows off by more than :data:`MARGIN` points.
"""
import csv
from pathlib import Path

PUBLISHED = Path(__file__).with_name("published.csv")
MARGIN = 1.0  # top-1 points; upstream's own reruns of one config differ by ~0.3–0.8 (e.g. 340x256 vs short-side 256)


def published_rows(path=PUBLISHED):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _number(text):
    return float(text) if text not in (None, "") else None


def protocol_differences(row, record):
    """What our run did differently from the published row, one short line each."""
    differences = []
    config, protocol = record.get("config") or {}, record.get("protocol") or {}
    test = (protocol.get("test") or {}).get(row["test_mode"])
    if test and row["views"]:
        ours = f"{test['num_clips']}x{test['clips_per_video']}"
        if ours != row["views"]:
            differences.append(f"views: ours {ours} (clips × views·crops), published {row['views']}")
    url = ((config.get("pretrained") or {}).get("url") or "")
    if row["weights"] and url and url.rsplit("/", 1)[-1] != row["weights"]:
        differences.append(f"weights: ours {url.rsplit('/', 1)[-1]}, published {row['weights']}")
    if protocol.get("total_batch") and config.get("reference_batch") \
            and protocol["total_batch"] != config["reference_batch"]:
        differences.append(f"batch: ours {protocol['total_batch']} ({protocol.get('batch_policy')}), "
                           f"published {config['reference_batch']}")
    epoch = (protocol.get("checkpoint") or {}).get("epoch")
    if row["epochs"] and epoch is not None and int(epoch) != int(row["epochs"]):
        differences.append(f"epochs: ours {epoch}, published {row['epochs']}")
    return differences


def compare(record, rows=None):
    """[{seed, source, test_mode, top1, top5, difference_top1, difference_top5, flagged, protocol_differences}] for
    the published rows of ``record``'s (model, dataset, mode); [] when the seeds publish none."""
    rows = published_rows() if rows is None else rows
    out = []
    for row in rows:
        if (row["model"], row["dataset"], row["mode"]) != (record["model"], record["dataset"], record["mode"]):
            continue
        scores = record.get(row["test_mode"]) or {}
        top1, top5 = _number(row["top1"]), _number(row["top5"])
        ours1 = scores.get("top1") * 100 if scores.get("top1") is not None else None
        ours5 = scores.get("top5") * 100 if scores.get("top5") is not None else None
        difference1 = round(ours1 - top1, 2) if ours1 is not None else None
        out.append({"seed": row["seed"], "source": row["source"], "frames": row["frames"],
                    "test_mode": row["test_mode"], "top1": top1, "top5": top5, "difference_top1": difference1,
                    "difference_top5": round(ours5 - top5, 2) if ours5 is not None and top5 is not None else None,
                    "flagged": difference1 is not None and abs(difference1) > MARGIN,
                    "protocol_differences": protocol_differences(row, record)})
    return out
