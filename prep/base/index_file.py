"""The dataset index file (``prep index`` writes it): Parquet, one row per video (:data:`INDEX_COLUMNS` and
``split_<k>``), the class list in its metadata; the annotations' ``manifest.parquet`` is read the same way.

pandas is imported where it is used: the per-shard frames and flow processes import this module and start ~0.5 s
faster without it."""
import csv

from prep.base.atomic import atomic_file
from prep.base.errors import UserError

INDEX_COLUMNS = ["video_id", "class_name", "label", "video_path", "status"]


def write_index(frame, classes, path):
    """Parquet with the class list in its metadata, written atomically."""
    table_meta = {"classes": "\n".join(classes)}
    frame = frame.copy()
    frame.attrs.update(table_meta)
    with atomic_file(path, "wb") as handle:
        frame.to_parquet(handle, index=False)


def read_index(path):
    import pandas as pd

    frame = pd.read_parquet(path)
    classes = frame.attrs.get("classes", "")
    if not classes:
        raise UserError(f"{path}: not an actionflow index (no class list in its metadata)")
    return frame, classes.split("\n")


def index_videos(index_path):
    """``(video_id, video_path)`` of the usable videos listed in an index."""
    import pandas as pd

    frame = pd.read_parquet(index_path, columns=["video_id", "video_path", "status"])
    frame = frame[frame["status"] == "ok"]
    return list(zip(frame["video_id"], frame["video_path"]))


def missing_report_rows(frame, notes=None):
    """MISSING.csv rows (video_id, class_name, splits, reason) of the rows of an index or manifest whose status is
    not ``ok``; the reason is the status after its ``missing:`` / ``quarantined:`` word."""
    split_cols = [c for c in frame.columns if c.startswith("split_")]
    rows = []
    for record in frame[frame["status"] != "ok"].to_dict("records"):
        splits = " ".join(f"{c[len('split_'):]}:{record[c]}" for c in split_cols)
        reason = record["status"].split(":", 1)[1].strip() if ":" in record["status"] else record["status"]
        reason = (notes or {}).get(record["video_id"], reason)
        rows.append([record["video_id"], record["class_name"], splits, reason])
    return rows


def write_missing(path, rows):
    """MISSING.csv (``video_id,class_name,splits,reason``: ``prep arrange``'s and ``prep lists``'), atomically."""
    with atomic_file(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "class_name", "splits", "reason"])
        writer.writerows(rows)
