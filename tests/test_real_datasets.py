"""Real datasets from download to annotation files, on tiny copies in each dataset's exact archive layout.

The copies hold real (tiny) videos and are served from 127.0.0.1 by tests/http_server.py with faults: dropped
connections (resumed), a 404 and a file whose checksum does not match. No tool here can *create* RAR archives, so
UCF101 and HMDB51 are served as zip / tar with the same trees (the arrangement code does not depend on the archive
type: `prep unpack` tells the type by content); RAR extraction itself, also of a RAR nested in another archive as in
hmdb51_org.rar, is tested on the RAR fixtures in shared/fixtures/rar.
"""
import csv
import gzip
import io
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, REPO, run_prep, snakemake_executable
from prep.datasets import kinetics400

try:
    from http_server import FaultyFileServer
except ImportError:  # tests/ became a package
    from tests.http_server import FaultyFileServer

RAR_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "rar"
if not RAR_FIXTURES.is_dir():
    RAR_FIXTURES = Path("/work/shared/fixtures/rar")
OFFICIAL = Path(__file__).resolve().parent / "fixtures"
# the read-only shared fixtures sit beside the clone (CI: ../shared), or at /work/shared on the build machine
SHARED_FIXTURES = [Path(__file__).resolve().parents[2] / "shared" / "fixtures", Path("/work/shared/fixtures")]


def official_splits(dataset):
    """The official split files of ``dataset``: vendored under tests/fixtures, or the shared fixtures (UCF101)."""
    candidates = [OFFICIAL / dataset / "splits"]
    if dataset == "ucf101":
        candidates += [root / "ucfTrainTestlist" for root in SHARED_FIXTURES]
    return next((path for path in candidates if (path / "trainlist01.txt").is_file()
                 or any(path.glob("*_test_split1.txt"))), None)

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
UCF_FOLDERS = {"HandstandPushups": "HandStandPushups"}  # the archive's folder differs in case from classInd
HMDB_CLASSES = ["brush_hair", "pour", "shoot_gun"]
K400_CLASSES = ["abseiling", "passing American football (in game)", "playing cards"]


# ---------------------------------------------------------------------------------------------------------------------
# tiny copies


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two real tiny videos (.avi xvid, .mp4 h264) to copy under every name."""
    from prep.datasets.synthetic import generate

    root = generate(tmp_path_factory.mktemp("clips") / "raw", seed=1, num_classes=2, videos_per_class=2,
                    frame_size=32, min_frames=3, max_frames=4, test_fraction=0.5)
    videos = sorted((root / "videos").rglob("*.*"))
    return {".avi": next(v for v in videos if v.suffix == ".avi").read_bytes(),
            ".mp4": next(v for v in videos if v.suffix == ".mp4").read_bytes()}


def crlf(lines):
    return "".join(f"{line}\r\n" for line in lines).encode()


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def write_tar(path, members, mode="w"):
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def ucf101_copy(clips, www):
    """UCF101.zip (UCF-101/<Class>/v_*.avi) and the split zip (ucfTrainTestlist/), groups 1–2 test, 3–4 train."""
    videos, lists = {}, {"train": [], "test": []}
    for label, cls in enumerate(UCF_CLASSES, start=1):
        stem = UCF_FOLDERS.get(cls, cls)
        for group in range(1, 5):
            name = f"v_{stem}_g{group:02d}_c01.avi"
            videos[f"UCF-101/{stem}/{name}"] = clips[".avi"]
            if group <= 2:
                lists["test"].append(f"{cls}/{name}")
            else:
                lists["train"].append(f"{cls}/{name} {label}")
    write_zip(www / "UCF101.zip", videos)
    splits = {"ucfTrainTestlist/classInd.txt": crlf(f"{i} {c}" for i, c in enumerate(UCF_CLASSES, start=1))}
    for k in (1, 2, 3):
        splits[f"ucfTrainTestlist/trainlist0{k}.txt"] = crlf(lists["train"])
        splits[f"ucfTrainTestlist/testlist0{k}.txt"] = crlf(lists["test"])
    write_zip(www / "UCF101TrainTestSplits-RecognitionTask.zip", splits)
    return {"train": len(lists["train"]), "test": len(lists["test"])}


def hmdb51_copy(clips, www):
    """hmdb51_org.tar holding one <class>.tar per class (as hmdb51_org.rar holds RARs), test_train_splits.zip."""
    outer, splits, counts = {}, {}, {"train": 0, "test": 0}
    for cls in HMDB_CLASSES:
        names = [f"{cls}_{n}_f_cm_np1_fr_med_{n}.avi" for n in range(3)]
        names[0] = f"Stuff_&_(more)!_it's_{cls}_goo;d_0.avi"  # the characters HMDB51 names have (never a space)
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w") as tf:
            for name in names:
                info = tarfile.TarInfo(f"{cls}/{name}")
                info.size = len(clips[".avi"])
                tf.addfile(info, io.BytesIO(clips[".avi"]))
        outer[f"{cls}.tar"] = inner.getvalue()
        codes = ["1", "2", "0"]
        counts["train"] += 1
        counts["test"] += 1
        for k in (1, 2, 3):
            splits[f"testTrainMulti_7030_splits/{cls}_test_split{k}.txt"] = (
                "".join(f"{name} {code} \n" for name, code in zip(names, codes)).encode())
    write_tar(www / "hmdb51_org.tar", outer)
    write_zip(www / "test_train_splits.zip", splits)
    return counts


def kinetics_copy(clips, www, server):
    """kinetics400.tar.gz (CSVs), three clip archives (class folders: as is, and mmaction2-renamed), a link list.

    part1 is served with dropped connections, part2 with a wrong checksum, part3 is a 404; one CSV clip is in no
    archive. Returns the video_ids that must end up in the missing report.
    """
    rows, parts, missing = [], {"part1": {}, "part2": {}, "part3": {}}, set()
    for c, label in enumerate(K400_CLASSES):
        for n in range(4):
            ytid = f"y{c}{n}-_x"
            start = 10 * n
            split = "train" if n < 3 else "val"
            rows.append([label, ytid, start, start + 10, split])
            stem = f"{ytid}_{start:06d}_{start + 10:06d}"
            video_id = f"{kinetics400.mmaction2_class_folder(label)}/{stem}"
            folder = label if c != 1 else label.replace(" ", "_").replace("(", "-").replace(")", "-")
            if (c, n) == (0, 3):
                missing.add(video_id)  # in no archive at all
                continue
            part = "part3" if (c, n) == (2, 0) else "part2" if (c, n) == (1, 2) else "part1"
            if part != "part1":
                missing.add(video_id)
            parts[part][f"{folder}/{stem}.mp4"] = clips[".mp4"]
    for part, members in parts.items():
        write_tar(www / f"{part}.tar.gz", members, mode="w:gz")
    header = "label,youtube_id,time_start,time_end,split\n"
    train = header + "".join(f'"{r[0]}",{r[1]},{r[2]},{r[3]},{r[4]}\n' for r in rows if r[4] == "train")
    val = header + "".join(f'"{r[0]}",{r[1]},{r[2]},{r[3]},validate\n' for r in rows if r[4] == "val")
    write_tar(www / "kinetics400.tar.gz", {"kinetics400/train.csv": train.encode(),
                                           "kinetics400/validate.csv": val.encode(),
                                           "kinetics400/test.csv": b"youtube_id,time_start,time_end,split\n"
                                                                   b"zz,0,10,test\n"}, mode="w:gz")
    (www / "train_link.list").write_text("".join(server.url(f"{p}.tar.gz") + "\n" for p in ("part1", "part2")))
    (www / "val_link.list").write_text("# val\n" + server.url("part3.tar.gz") + "\n")
    return missing, len(rows)


@pytest.fixture(scope="module")
def served(clips, tmp_path_factory):
    www = tmp_path_factory.mktemp("www")
    with FaultyFileServer(www) as server:
        counts = {"ucf101": ucf101_copy(clips, www), "hmdb51": hmdb51_copy(clips, www)}
        k400_missing, k400_total = kinetics_copy(clips, www, server)
        sums = {line.split()[1]: line.split()[0] for line in server.checksums("sha256").splitlines()}
        # another gzip stream than the published one (it still starts as its name promises): the checksum is wrong
        (www / "part2.tar.gz").write_bytes(gzip.compress(b"not the published archive"))
        server.drop_connection("UCF101.zip", attempts=2, after=2000)
        server.drop_connection("part1.tar.gz", attempts=1, after=500)
        server.not_found.add("part3.tar.gz")
        yield {"server": server, "www": www, "counts": counts, "sums": sums,
               "k400_missing": k400_missing, "k400_total": k400_total}


def sources(served):
    server, sums = served["server"], served["sums"]
    return {
        "ucf101": {"urls": [server.url("UCF101.zip"), server.url("UCF101TrainTestSplits-RecognitionTask.zip")],
                   "checksums": {"UCF101.zip": sums["UCF101.zip"]}},
        "hmdb51": {"urls": [server.url("hmdb51_org.tar"), server.url("test_train_splits.zip")]},
        "kinetics400": {"annotations": [server.url("kinetics400.tar.gz")],
                        "link_lists": [server.url("train_link.list"), server.url("val_link.list")],
                        "checksums": {"part2.tar.gz": sums["part2.tar.gz"]},
                        "max_missing_fraction": 0.5},
    }


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_list(path):
    """mmaction2 list → [(class/video, n, label)], split on the last two spaces as our loader does."""
    return [line.rsplit(" ", 2) for line in Path(path).read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------------------
# the pipeline through Snakemake


@pytest.mark.slow
def test_snakemake_downloads_arranges_and_lists_every_real_dataset(served, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    config = {"datasets": ["ucf101"], "models": ["tsn"], "modes": ["rgb", "flow"],
              "recipes": {"tsn": {"arch": "tsn_r18"}},
              "frames": {"shards": 1}, "reencode": {"shards": 1}, "flow": {"shards": 1, "algorithm": "farneback"},
              "sources": {"workers": 2, "retries": 2, "timeout": 10, "cache": str(tmp_path / "cache"),
                          **sources(served)}}
    (work / "cfg.yaml").write_text(yaml.safe_dump(config))
    targets = [f"data/{d}/annotations" for d in ("ucf101", "hmdb51", "kinetics400")]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(REPO)}
    result = subprocess.run([snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                             "--configfile", str(work / "cfg.yaml"), "--cores", "2", *targets],
                            capture_output=True, text=True, env=env, timeout=300)
    logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')}" for p in sorted((work / "logs").rglob("*.log"))
                     if p.stat().st_size) if (work / "logs").is_dir() else ""
    assert result.returncode == 0, result.stderr[-4000:] + logs[-4000:]
    server = served["server"]

    # resumed downloads completed; nothing partial or corrupt stands anywhere
    assert [r[1] for r in server.requests_for("UCF101.zip")] == [None, "bytes=2000-", "bytes=4000-"]
    assert (work / "data/ucf101/downloads/UCF101.zip").read_bytes() == (served["www"] / "UCF101.zip").read_bytes()
    assert (tmp_path / "cache" / "UCF101.zip").is_file()  # the shared cache got it too
    assert list(work.rglob("*.part")) == [] and list(work.rglob("*.partial")) == []
    assert not (work / "data/kinetics400/downloads/part2.tar.gz").exists()  # wrong checksum: not kept
    assert not any((work / f"data/{d}/extracted").exists() for d in ("ucf101", "hmdb51", "kinetics400"))
    failed = {row["url"].rsplit("/", 1)[-1]: row["reason"]
              for row in read_csv(work / "data/kinetics400/downloads/missing.csv")}
    assert set(failed) == {"part2.tar.gz", "part3.tar.gz"}
    assert "sha256 mismatch" in failed["part2.tar.gz"] and "404" in failed["part3.tar.gz"]

    # UCF101: classInd order, 1-based → 0-based labels; the HandStandPushups folder matched case-insensitively
    counts = served["counts"]
    ann = work / "data/ucf101/annotations"
    train, val = read_list(ann / "ucf101_train_split_1_rawframes.txt"), read_list(ann / "ucf101_val_split_1_rawframes.txt")
    assert (len(train), len(val)) == (counts["ucf101"]["train"], counts["ucf101"]["test"])
    assert {(v.split("/")[0], int(y)) for v, _, y in train} == {(c, i) for i, c in enumerate(UCF_CLASSES)}
    assert all(int(n) >= 3 for _, n, _ in train + val)
    assert (ann / "label_map.txt").read_text().split() == UCF_CLASSES
    assert read_csv(work / "data/ucf101/missing.csv") == []
    assert (work / "data/ucf101/raw/splits/classInd.txt").is_file()

    # HMDB51: sorted classes, codes 1 train / 2 test / 0 unused, names with & ( ) ! ' ;
    ann = work / "data/hmdb51/annotations"
    train, val = read_list(ann / "hmdb51_train_split_1_rawframes.txt"), read_list(ann / "hmdb51_val_split_1_rawframes.txt")
    assert (len(train), len(val)) == (counts["hmdb51"]["train"], counts["hmdb51"]["test"])
    assert sorted((v.split("/")[0], int(y)) for v, _, y in train) == [(c, i) for i, c in enumerate(HMDB_CLASSES)]
    assert any("Stuff_&_(more)!_it's" in v for v, _, _ in train)
    assert read_csv(work / "data/hmdb51/missing.csv") == []

    # Kinetics-400: the missing report is exact, the lists hold the rest with labels sorted by name
    report = read_csv(work / "data/kinetics400/missing.csv")
    assert {row["video_id"] for row in report} == served["k400_missing"]
    assert {row["reason"] for row in report} == {"not found"}
    ann = work / "data/kinetics400/annotations"
    train, val = read_list(ann / "kinetics400_train_list_rawframes.txt"), read_list(ann / "kinetics400_val_list_rawframes.txt")
    listed = {v for v, _, _ in train + val}
    assert len(listed) == served["k400_total"] - len(served["k400_missing"])
    assert not listed & served["k400_missing"]
    assert {(v.rsplit("/", 1)[0], int(y)) for v, _, y in train + val} == {
        (kinetics400.mmaction2_class_folder(c), i) for i, c in enumerate(K400_CLASSES)}
    # the 0.x mmaction2-renamed folder (passing_American_football_-in_game-) is filed under its 1.x form
    assert (work / "data/kinetics400/raw/videos/passing_American_football_(in_game)").is_dir()
    assert len(val) == 3 - len([m for m in served["k400_missing"] if m.endswith("_000030_000040")])

    # a rerun has nothing to do
    again = subprocess.run([snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                            "--configfile", str(work / "cfg.yaml"), "--cores", "2", "-n", *targets],
                           capture_output=True, text=True, env=env, timeout=120)
    assert "Nothing to be done" in again.stdout + again.stderr


# ---------------------------------------------------------------------------------------------------------------------
# stages alone


def test_kinetics_over_the_threshold_fails_clearly_and_writes_nothing(served, tmp_path):
    from prep.arrange import arrange
    from prep.base.archives import unpack
    from prep.fetch import fetch

    config = dict(sources(served)["kinetics400"], max_missing_fraction=0.15)
    got = fetch("kinetics400", config, tmp_path / "downloads", workers=2, retries=1, timeout=10, backoff=0.01)
    assert len(got["failed"]) == 2 and len(got["archives"]) == 2  # part1 + the annotation tarball
    failures = unpack(got["archives"], tmp_path / "extracted", tolerate_failures=True)
    assert failures == []
    from prep import UserError
    with pytest.raises(UserError, match=r"3 of 12 videos \(25\.0%\) are missing, more than the 15\.0% allowed"):
        arrange("kinetics400", got, tmp_path / "extracted", tmp_path / "raw", tmp_path / "missing.csv",
                max_missing_fraction=0.15)
    assert not (tmp_path / "raw").exists() and not (tmp_path / "missing.csv").exists()
    rejected = read_csv(tmp_path / "missing.rejected.csv")
    assert {row["video_id"] for row in rejected} == served["k400_missing"]


def test_kinetics_local_clip_dir_flat_and_in_class_folders(clips, tmp_path):
    """CSV + the user's own clips (some flat, some in class folders, one empty): no download at all."""
    from prep.arrange import arrange
    from prep.fetch import fetch

    mine = tmp_path / "my_kinetics"
    (mine / "abseiling").mkdir(parents=True)
    (mine / "abseiling" / "a_000001_000011.mp4").write_bytes(clips[".mp4"])
    (mine / "b_000002_000012.mkv").write_bytes(clips[".mp4"])  # flat, another container
    (mine / "c_000003_000013.mp4").write_bytes(b"")  # empty
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("label,youtube_id,time_start,time_end,split\nabseiling,a,1,11,train\n"
                        "\"tying tie\",b,2,12,train\nabseiling,c,3,13,train\nabseiling,d,4,14,val\n")
    got = fetch("kinetics400", {"annotations": [str(csv_path)], "local": str(mine)}, tmp_path / "dl")
    assert got["trees"] == [str(mine.resolve())] and got["archives"] == []
    result = arrange("kinetics400", got, None, tmp_path / "raw", tmp_path / "missing.csv", max_missing_fraction=0.5)
    assert result["missing"] == 2
    report = {row["video_id"]: row["reason"] for row in read_csv(tmp_path / "missing.csv")}
    assert report == {"abseiling/c_000003_000013": f"empty file: {(mine / 'c_000003_000013.mp4').resolve()}",
                      "abseiling/d_000004_000014": "not found"}
    assert (tmp_path / "raw/videos/tying_tie/b_000002_000012.mkv").is_file()
    assert not (tmp_path / "dl").exists()  # nothing downloaded


def test_ucf101_local_tree_is_linked_not_copied(clips, tmp_path):
    """A UCF101 copy already extracted on disk: `local:` skips every download; videos become links."""
    from prep.arrange import arrange
    from prep.fetch import fetch
    from prep.datasets import build_index

    www = tmp_path / "archives"
    www.mkdir()
    ucf101_copy(clips, www)
    tree = tmp_path / "UCF101"
    for name in ("UCF101.zip", "UCF101TrainTestSplits-RecognitionTask.zip"):
        zipfile.ZipFile(www / name).extractall(tree)
    got = fetch("ucf101", {"urls": ["http://127.0.0.1:9/never"], "local": [str(tree)]}, tmp_path / "dl")
    arrange("ucf101", got, None, tmp_path / "raw", tmp_path / "missing.csv")
    video = tmp_path / "raw/videos/HandStandPushups/v_HandStandPushups_g01_c01.avi"
    assert video.is_file() and os.stat(video).st_ino == os.stat(tree / "UCF-101/HandStandPushups" / video.name).st_ino
    frame, classes = build_index("ucf101", tmp_path / "raw/splits", tmp_path / "raw/videos")
    assert classes == UCF_CLASSES and (frame["status"] == "ok").all() and len(frame) == 12


def test_ucf101_missing_video_fails_at_the_default_threshold(clips, tmp_path):
    from prep import UserError
    from prep.arrange import arrange

    www = tmp_path / "archives"
    www.mkdir()
    ucf101_copy(clips, www)
    tree = tmp_path / "tree"
    for name in ("UCF101.zip", "UCF101TrainTestSplits-RecognitionTask.zip"):
        zipfile.ZipFile(www / name).extractall(tree)
    (tree / "UCF-101/YoYo/v_YoYo_g03_c01.avi").unlink()
    with pytest.raises(UserError, match="1 of 12 videos"):
        arrange("ucf101", {"trees": [str(tree)], "files": [], "failed": []}, None, tmp_path / "raw",
                tmp_path / "missing.csv")
    assert [r["video_id"] for r in read_csv(tmp_path / "missing.rejected.csv")] == ["YoYo/v_YoYo_g03_c01"]


def test_fetch_fails_clearly_when_an_official_archive_is_gone(served, tmp_path):
    result = run_prep("fetch", "hmdb51", tmp_path / "s.json", "--downloads", tmp_path / "dl", "--retries", "0",
                      "--backoff", "0.01", "--sources",
                      json.dumps({"urls": [served["server"].url("hmdb51_org.tar"), served["server"].url("gone.rar")]}),
                      check=False)
    assert result.returncode == 2 and "gone.rar: HTTP 404" in result.stderr
    assert not (tmp_path / "s.json").exists()


@pytest.mark.skipif(not RAR_FIXTURES.is_dir(), reason="shared/fixtures/rar not present")
def test_unpack_rar_and_a_rar_nested_in_an_archive(tmp_path):
    """The RAR path itself: a RAR 5 and a RAR 3 archive, and (as hmdb51_org.rar) RARs inside an archive."""
    from prep.base.archives import rar_tools, unpack

    if not rar_tools():
        pytest.skip("no RAR tool (unar / bsdtar)")
    outer = tmp_path / "hmdb51_org.tar"
    write_tar(outer, {"brush_hair.rar": (RAR_FIXTURES / "rar5-solid.rar").read_bytes(),
                      "pour.rar": (RAR_FIXTURES / "rar3-solid.rar").read_bytes()})
    failed = unpack([str(outer), str(RAR_FIXTURES / "rar5-solid.rar")], tmp_path / "out", nested=True)
    assert failed == []
    for folder in ("hmdb51_org/brush_hair", "hmdb51_org/pour", "rar5-solid"):
        assert sorted(p.name for p in (tmp_path / "out" / folder).iterdir() if not p.name.startswith(".")) \
            == ["stest1.txt", "stest2.txt"], folder
    assert not list((tmp_path / "out").rglob("*.rar"))


def test_unpack_tolerates_a_bad_kinetics_archive_only(tmp_path):
    from prep import UserError
    from prep.base.archives import unpack

    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    write_tar(good, {"abseiling/x_000000_000010.mp4": b"data"}, mode="w:gz")
    bad.write_bytes(good.read_bytes()[:40])  # truncated
    failed = unpack([str(good), str(bad)], tmp_path / "out", tolerate_failures=True)
    assert [Path(a).name for a, _ in failed] == ["bad.tar.gz"]
    assert not (tmp_path / "out" / "bad").exists()
    with pytest.raises(UserError):
        unpack([str(bad)], tmp_path / "out2")


# ---------------------------------------------------------------------------------------------------------------------
# prep lists on each dataset's layout


def rawframes_tree(root, video_ids, n=2, pack=False):
    """A frames tree as other tools write it: n frames, n − 1 flow frames beside them, no markers; folders of
    (empty) JPEGs, or one pack per video (13,320 files for UCF101 instead of 53,280)."""
    from prep.base.frame_source import NAMINGS
    from prep.base.packed import PackWriter

    naming = NAMINGS["mmaction"]
    names = [naming.name(k) for k in range(1, n + 1)]
    names += [naming.name(k, "flow", c) for k in range(1, n) for c in "xy"]
    for vid in video_ids:
        folder = root / vid
        if pack:
            folder.parent.mkdir(parents=True, exist_ok=True)
            with open(f"{folder}.pack", "wb") as handle:
                writer = PackWriter(handle)
                for name in names:
                    writer.add(name, b"")
                writer.finish()
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / name).write_bytes(b"")


def split_ids(dataset, splits_dir):
    from prep.datasets import read_dataset
    index = read_dataset(dataset, splits_dir)
    return index, [v.video_id for v in index.videos]


@pytest.mark.parametrize("layout", ["class folders", "flat", "packs"])
@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51", "kinetics400"])
def test_lists_for_each_dataset_layout(dataset, layout, clips, tmp_path):
    """`prep lists` over trees other tools made: class folders, flat (a Kinetics tree of clips), packs."""
    www = tmp_path / "www"
    www.mkdir()
    if dataset == "ucf101":
        ucf101_copy(clips, www)
        zipfile.ZipFile(www / "UCF101TrainTestSplits-RecognitionTask.zip").extractall(tmp_path)
        splits, expected = tmp_path / "ucfTrainTestlist", (6, 6)
        names = ("ucf101_train_split_1", "ucf101_val_split_1")
    elif dataset == "hmdb51":
        hmdb51_copy(clips, www)
        zipfile.ZipFile(www / "test_train_splits.zip").extractall(tmp_path)
        splits, expected = tmp_path / "testTrainMulti_7030_splits", (3, 3)
        names = ("hmdb51_train_split_1", "hmdb51_val_split_1")
    else:
        splits = tmp_path / "csv"
        splits.mkdir()
        (splits / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                          "\"playing cards\",a,0,10,train\nabseiling,b,1,11,train\n")
        (splits / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,c,2,12,val\n")
        expected, names = (2, 1), ("kinetics400_train_list", "kinetics400_val_list")
    index, ids = split_ids(dataset, splits)
    class_of = {vid.rsplit("/", 1)[-1]: vid.rsplit("/", 1)[0] for vid in ids}
    tree_ids = [vid.rsplit("/", 1)[-1] for vid in ids] if layout == "flat" else ids
    rawframes_tree(tmp_path / "rawframes", tree_ids, n=3, pack=layout == "packs")
    run_prep("lists", dataset, "--splits", splits, "--frames", tmp_path / "rawframes", "--out", tmp_path / "ann")
    train, val = (read_list(tmp_path / "ann" / f"{n}_rawframes.txt") for n in names)
    assert (len(train), len(val)) == expected
    assert all(n == "3" for _, n, _ in train + val)
    for vid, _, label in train + val:
        assert vid in tree_ids  # the lists address the videos where the tree has them
        assert kinetics400.mmaction2_class_folder(index.classes[int(label)]) == class_of[vid.rsplit("/", 1)[-1]]
    flow = read_list(tmp_path / "ann" / f"{names[0]}_flow.txt")
    assert all(n == "2" for _, n, _ in flow)


def test_lists_on_a_tree_without_the_listed_videos_is_a_clear_error(tmp_path):
    splits = tmp_path / "csv"
    splits.mkdir()
    (splits / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,a,0,10,train\n")
    rawframes_tree(tmp_path / "rawframes", ["other/clip_000000_000010"], n=3)
    result = run_prep("lists", "kinetics400", "--splits", splits, "--frames", tmp_path / "rawframes",
                      "--out", tmp_path / "ann", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "none of the 1 videos of the kinetics400 lists has frames there" in result.stderr
    assert not (tmp_path / "ann").exists()


def test_two_frame_folders_for_one_video_are_named(tmp_path):
    splits = tmp_path / "csv"
    splits.mkdir()
    (splits / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,a,0,10,train\n")
    rawframes_tree(tmp_path / "rawframes", ["abseil/a_000000_000010", "abseiling_x/a_000000_000010"], n=3)
    result = run_prep("lists", "kinetics400", "--splits", splits, "--frames", tmp_path / "rawframes",
                      "--out", tmp_path / "ann", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "abseil/a_000000_000010 and abseiling_x/a_000000_000010" in result.stderr


@pytest.mark.parametrize("dataset,expected", [("ucf101", (9537, 3783, 101)), ("hmdb51", (3570, 1530, 51))])
def test_lists_on_the_official_split_files(dataset, expected, tmp_path):
    splits = official_splits(dataset)
    if splits is None and dataset == "ucf101":  # always there: a missing fixture is a failure, not a skip
        pytest.fail(f"UCF101's official split files not found (looked in tests/fixtures/ucf101/splits and "
                    f"{', '.join(str(root / 'ucfTrainTestlist') for root in SHARED_FIXTURES)})")
    if splits is None:
        pytest.skip(f"official {dataset} split files not vendored under {OFFICIAL / dataset / 'splits'}")
    index, ids = split_ids(dataset, splits)
    rawframes_tree(tmp_path / "rawframes", ids, n=2, pack=True)
    run_prep("lists", dataset, "--splits", splits, "--frames", tmp_path / "rawframes", "--out", tmp_path / "ann")
    train = read_list(tmp_path / "ann" / f"{dataset}_train_split_1_rawframes.txt")
    val = read_list(tmp_path / "ann" / f"{dataset}_val_split_1_rawframes.txt")
    assert (len(train), len(val), len(index.classes)) == expected
