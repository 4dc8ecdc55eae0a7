"""The dataset index file (``prep index`` writes it): Parquet, one row per video (:data:`INDEX_COLUMNS` and
``split_<k>``), the class list in its metadata; the annotations' ``manifest.parquet`` is read the same way.

pandas is imported where it is used: the per-shard frames and flow processes import this module and start ~0.5 s
faster without it."""
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
