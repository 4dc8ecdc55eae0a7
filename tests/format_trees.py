"""Small UCF101-, HMDB51- and Kinetics-shaped datasets run through the prep stages as the pipeline runs them
(index → frames → flow → annotations), for the tests that read our output with the peers' own loaders
(tests/peers, tests/test_formats.py).

Names are the hostile kind: Kinetics labels with spaces, parentheses, quotes and apostrophes; HMDB51 file names with
``& ( ) ! ' ;``; UCF101's classInd saying ``HandstandPushups`` for ``v_HandStandPushups_*`` files.
"""
import csv
from pathlib import Path

import numpy as np

from prep.__main__ import main as prep_main
from prep.datasets.kinetics400 import class_folder
from prep.datasets.synthetic import render_clip
from prep.base.media import encode_video

UCF_CLASSES = {"ApplyEyeMakeup": "ApplyEyeMakeup", "HandstandPushups": "HandStandPushups"}  # classInd: file stem
HMDB_CLASSES = ["brush_hair", "shoot_gun"]
K400_LABELS = ["abseiling", "massaging person's head", "passing American football (in game)", 'say "cheese"']
FRAME_SIZE = 64


def run_prep(*args):
    """A prep verb in this process (as `python -m prep` runs it, without a start-up per call)."""
    assert prep_main([str(a) for a in args]) == 0, args


def write_clip(path, seed, num_frames):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(render_clip("MoveRight", seed % 2 == 1, rng, num_frames, FRAME_SIZE), path)


def crlf(path, lines):
    Path(path).write_bytes("".join(f"{line}\r\n" for line in lines).encode())


def ucf101_shaped(root):
    """classInd + trainlist01/testlist01 (CRLF; one split keeps the tests fast), videos class/v_<stem>_gNN_c01.avi."""
    splits, videos = root / "splits", root / "videos"
    splits.mkdir(parents=True)
    train, test = [], []
    for label, (name, stem) in enumerate(UCF_CLASSES.items(), start=1):
        for group in (1, 8):
            rel = f"{name}/v_{stem}_g{group:02d}_c01.avi"
            write_clip(videos / rel, seed=label * 10 + group, num_frames=18 + 3 * group)
            (test if group == 1 else train).append(f"{rel} {label}" if group != 1 else rel)
    crlf(splits / "classInd.txt", [f"{i} {name}" for i, name in enumerate(UCF_CLASSES, start=1)])
    crlf(splits / "trainlist01.txt", train)
    crlf(splits / "testlist01.txt", test)
    return splits, videos


def hmdb51_shaped(root):
    """<class>_test_split1.txt with lines 'video.avi 1|2', videos class/<name>.avi."""
    splits, videos = root / "splits", root / "videos"
    splits.mkdir(parents=True)
    for c, cls in enumerate(HMDB_CLASSES):
        names = [f"Stuff_&_(more)!_it's_{cls}_goo;d_0.avi", f"#20_{cls}_u_nm_np1_fr_goo_1.avi"]
        for n, name in enumerate(names):
            write_clip(videos / cls / name, seed=100 + c * 10 + n, num_frames=20 + 7 * n)
        (splits / f"{cls}_test_split1.txt").write_text(f"{names[0]} 2 \n{names[1]} 1 \n")
    return splits, videos


def kinetics400_shaped(root):
    """train.csv + validate.csv (labels as written), clips in class folders of mmaction2's form, as `prep arrange`
    leaves them."""
    splits, videos = root / "splits", root / "videos"
    splits.mkdir(parents=True)
    rows = {"train": [], "val": []}
    for c, label in enumerate(K400_LABELS):
        for n, subset in enumerate(("train", "val")):
            youtube_id = f"y{c}{n}-_{'ab'[n]}"
            rows[subset].append([label, youtube_id, 10 * n, 10 * n + 10, subset])
            clip = f"{youtube_id}_{10 * n:06d}_{10 * n + 10:06d}.mp4"
            write_clip(videos / class_folder(label) / clip, seed=200 + c * 10 + n, num_frames=16 + 9 * n + c)
    for subset, name in (("train", "train.csv"), ("val", "validate.csv")):
        with open(splits / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            writer.writerows(rows[subset])
    return splits, videos


SHAPES = {"ucf101": ucf101_shaped, "hmdb51": hmdb51_shaped, "kinetics400": kinetics400_shaped}


def prepared(dataset, root, naming="mmaction", flow_naming="mmaction", class_folders="mmaction2", videos=None,
             splits=None, pack=False):
    """The dataset through `prep index / frames / flow / annotations` into root/{rawframes,flow,annotations}; the
    paths of the trees. ``videos``/``splits``: reuse a dataset already written (another naming of the same)."""
    root = Path(root)
    if videos is None:
        splits, videos = SHAPES[dataset](root / "source")
    run_prep("index", dataset, splits, videos, root / "index.parquet", "--class-folders", class_folders)
    packed = ["--pack"] if pack else []
    run_prep("frames", videos, root / "rawframes", "--index", root / "index.parquet", "--naming", naming,
             "--report", root / "frames.csv", *packed)
    # Farnebäck: the layout is under test, not TV-L1 (tests/test_prep_pipeline.py checks TV-L1), and it is fast
    # as the pipeline runs them: the rgb names come from the frames tree's record, the lists' from both records
    run_prep("flow", root / "rawframes", root / "flow", "--index", root / "index.parquet",
             "--flow-naming", flow_naming, "--algorithm", "farneback", "--report", root / "flow.csv", *packed)
    run_prep("annotations", dataset, root / "index.parquet", root / "annotations", "--frames-reports",
             root / "frames.csv", "--flow-reports", root / "flow.csv", "--frames", root / "rawframes", "--flow",
             root / "flow")
    return {"dataset": dataset, "splits": splits, "videos": videos, "rawframes": root / "rawframes",
            "flow": root / "flow", "annotations": root / "annotations"}
