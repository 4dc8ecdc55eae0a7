"""Frames and flow at scale: packs, flow from videos and in place, exact counts, audio-only videos, kill -9 reruns."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from prep.base.trees import TREE_RECORD
from prep.base.optical_flow import quantize
from prep.base.media import ffmpeg_executable
from prep.base.frame_source import count_frames, open_frames
from prep.base.packed import PackError, PackWriter, open_packed
from prep.__main__ import main as prep_main
from tests.conftest import REPO, decoded_frames, run_prep


def cli(*args, check=True):
    """`python -m prep ARGS` in this process (no start-up cost); the exit status."""
    status = prep_main([str(a) for a in args])
    if check:
        assert status == 0, args
    return status


def tree_files(root):
    """{relative path: bytes} of every file under root (hidden ones included; the tree's own record aside: it says
    how the tree was made, prep.base.trees, and a pack tree keeps it beside the packs)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*"))
            if p.is_file() and p.name != TREE_RECORD}


def pack_entries(root):
    """{video/entry: bytes} of every pack under root, as the directory layout would name them."""
    entries = {}
    for pack_file in sorted(Path(root).rglob("*.pack")):
        with open_packed(pack_file) as pack:
            for name in pack.names():
                entries[f"{pack_file.relative_to(root).as_posix()[:-5]}/{name}"] = pack.read(name)
    return entries


def ffmpeg(*args):
    subprocess.run([ffmpeg_executable(), "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def videos(synthetic_small, tmp_path_factory):
    """Four of the session's synthetic videos (avi and mp4), level 2."""
    root = tmp_path_factory.mktemp("videos")
    index = synthetic_small["index"]
    for path in list(index["video_path"])[:4]:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synthetic_small["root"] / "raw" / "videos" / path, target)
    return root


def test_pack_format_roundtrip_and_damage(tmp_path):
    path = tmp_path / "v.pack"
    with open(path, "wb") as handle:
        writer = PackWriter(handle)
        for k in range(1, 4):
            writer.add(f"img_{k:05d}.jpg", bytes([k]) * (10 * k))
        writer.add("n_frames", b"3\n")
        writer.finish()
    with open_packed(path) as pack:
        assert pack.names() == ["img_00001.jpg", "img_00002.jpg", "img_00003.jpg", "n_frames"]
        assert pack.read("img_00002.jpg") == b"\x02" * 20 and pack.read("n_frames") == b"3\n"
        assert "img_00003.jpg" in pack and len(pack) == 4
        with pytest.raises(KeyError):
            pack.read("img_00004.jpg")
    assert count_frames(tmp_path, "v") == 3  # the frame source reads packs (its tests: tests/test_frame_source.py)
    with open_frames(tmp_path, "v", "flow") as flow:
        assert flow.contiguous() == (0, None)
    data = path.read_bytes()
    (tmp_path / "cut.pack").write_bytes(data[:-5])
    with pytest.raises(PackError):
        open_packed(tmp_path / "cut.pack")


def test_packs_hold_the_directory_bytes_and_the_loader_reads_both(videos, tmp_path):
    from train.presets import make_dataset
    from train.recipe import resolve

    cli("frames", videos, tmp_path / "dirs")
    cli("frames", videos, tmp_path / "packs", "--pack")
    cli("flow", tmp_path / "dirs", tmp_path / "flow_dirs", "--algorithm", "farneback")
    cli("flow", tmp_path / "packs", tmp_path / "flow_packs", "--pack", "--algorithm", "farneback")
    assert len(list((tmp_path / "packs").rglob("*.pack"))) == 4
    assert [p.name for p in (tmp_path / "packs").rglob("*") if p.is_file() and p.suffix != ".pack"] == [TREE_RECORD]
    assert pack_entries(tmp_path / "packs") == tree_files(tmp_path / "dirs")
    assert pack_entries(tmp_path / "flow_packs") == tree_files(tmp_path / "flow_dirs")
    # rerun skips packs
    cli("frames", videos, tmp_path / "packs", "--pack", "--report", tmp_path / "r.csv")
    assert set(pd.read_csv(tmp_path / "r.csv")["status"]) == {"skipped"}

    ids = sorted(p.relative_to(tmp_path / "dirs").as_posix() for p in (tmp_path / "dirs").glob("*/*"))
    for mode, dirs, packs, suffix in (("rgb", "dirs", "packs", "img_"), ("flow", "flow_dirs", "flow_packs", "flow_x_")):
        lines = [f"{v} {len(list((tmp_path / dirs / v).glob(suffix + '*')))} 0" for v in ids]
        (tmp_path / f"{mode}.txt").write_text("\n".join(lines) + "\n")
        settings = resolve({"arch": "tsn_r18", "num_clips": 2, "clip_len": 2, "input_size": 32,
                            "resize_short": 40}, mode)
        a = make_dataset(settings, tmp_path / f"{mode}.txt", tmp_path / dirs, test_mode=True)
        b = make_dataset(settings, tmp_path / f"{mode}.txt", tmp_path / packs, test_mode=True)
        for item in range(len(ids)):
            with a.source.open(ids[item]) as frames, b.source.open(ids[item]) as packed:
                assert packed.storage == "packs" and np.array_equal(frames.read(2), packed.read(2))
            assert a[item][0].equal(b[item][0])


def test_flow_in_place_beside_the_frames_with_a_marker_last(videos, tmp_path):
    tree = tmp_path / "rawframes"
    cli("frames", videos, tree)
    cli("flow", tree, tmp_path / "separate", "--algorithm", "farneback")
    cli("flow", tree, tree, "--report", tmp_path / "r1.csv", "--algorithm", "farneback")
    assert set(pd.read_csv(tmp_path / "r1.csv")["status"]) == {"done"}
    for video_dir in sorted(tree.glob("*/*")):
        separate = tmp_path / "separate" / video_dir.relative_to(tree)
        for f in separate.iterdir():
            assert (video_dir / f.name).read_bytes() == f.read_bytes()
        n_flow = len(list(separate.glob("flow_x_*")))
        assert (video_dir / ".flow_done").read_text() == f"{n_flow}\n"
        assert not [p for p in video_dir.iterdir() if p.name.endswith(".tmp")]
    cli("flow", tree, tree, "--report", tmp_path / "r2.csv", "--algorithm", "farneback")
    assert set(pd.read_csv(tmp_path / "r2.csv")["status"]) == {"skipped"}
    # a run killed while moving files in: some flow files, a temporary, no marker → redone, not taken as finished
    victim = sorted(tree.glob("*/*"))[0]
    expected = tree_files(victim)
    (victim / ".flow_done").unlink()
    sorted(victim.glob("flow_y_*"))[-1].unlink()
    (victim / ".flow.abc.tmp").mkdir()
    (victim / ".flow.abc.tmp" / "flow_y_00099.jpg").write_bytes(b"partial")
    cli("flow", tree, tree, "--report", tmp_path / "r3.csv", "--algorithm", "farneback")
    report = pd.read_csv(tmp_path / "r3.csv").set_index("video_id")
    assert report.loc[victim.relative_to(tree).as_posix(), "status"] == "done"
    assert tree_files(victim) == expected
    # packed frames: the flow is merged into each video's pack
    cli("frames", videos, tmp_path / "packs", "--pack")
    cli("flow", tmp_path / "packs", tmp_path / "packs", "--algorithm", "farneback")
    merged = pack_entries(tmp_path / "packs")
    assert merged == {k: v for k, v in tree_files(tree).items()}
    cli("flow", tmp_path / "packs", tmp_path / "packs", "--report", tmp_path / "r4.csv", "--algorithm", "farneback")
    assert set(pd.read_csv(tmp_path / "r4.csv")["status"]) == {"skipped"}


def test_flow_straight_from_videos(videos, tmp_path, capsys):
    cli("flow", videos, tmp_path / "flow", "--report", tmp_path / "r.csv")
    report = pd.read_csv(tmp_path / "r.csv", keep_default_na=False).set_index("video_id")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for video in sorted(videos.glob("*/*")):
        video_id = video.relative_to(videos).with_suffix("").as_posix()
        gray = decoded_frames(video, gray=True)
        assert report.loc[video_id, "n_flow"] == len(gray) - 1 and report.loc[video_id, "status"] == "done"
        out = tmp_path / "flow" / video_id
        assert len(list(out.glob("flow_x_*.jpg"))) == len(gray) - 1
        flow = tvl1.calc(gray[0], gray[1], None)
        ok, expected = cv2.imencode(".jpg", quantize(flow[..., 1], 20), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert (out / "flow_y_00001.jpg").read_bytes() == expected.tobytes()
    # no frames were written anywhere but the flow tree
    assert {p.name[:5] for p in (tmp_path / "flow").rglob("*") if p.is_file()} == {"flow_", ".flow", ".tree"}
    capsys.readouterr()
    assert cli("flow", videos, videos, check=False) == 2
    assert "OUT_DIR of its own" in capsys.readouterr().err


def test_truncated_video_keeps_exactly_the_decoded_frames(tmp_path):
    videos = tmp_path / "videos" / "Cls"
    videos.mkdir(parents=True)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", 30, "-c:v", "libx264", "-pix_fmt",
           "yuv420p", "-g", 1, "-bf", 0, "-movflags", "+faststart", tmp_path / "full.mp4")
    data = (tmp_path / "full.mp4").read_bytes()
    (videos / "cut.mp4").write_bytes(data[:int(len(data) * 0.6)])  # index says 30, the data ends early
    decoded = len(decoded_frames(videos / "cut.mp4", gray=True))
    assert 2 <= decoded < 30
    cli("frames", tmp_path / "videos", tmp_path / "frames", "--report", tmp_path / "frames.csv")
    row = pd.read_csv(tmp_path / "frames.csv", keep_default_na=False).iloc[0]
    assert (row["status"], row["n_frames"], row["container_frames"]) == ("done", decoded, 30)
    assert row["note"].startswith(f"decoded {decoded} of 30 frames the container claims")
    folder = tmp_path / "frames" / "Cls" / "cut"
    assert sorted(p.name for p in folder.glob("img_*")) == [f"img_{k:05d}.jpg" for k in range(1, decoded + 1)]
    assert (folder / "n_frames").read_text() == f"{decoded}\n"
    # the note survives a rerun that skips the video
    cli("frames", tmp_path / "videos", tmp_path / "frames", "--report", tmp_path / "again.csv")
    again = pd.read_csv(tmp_path / "again.csv", keep_default_na=False).iloc[0]
    # (a skip keeps the decoded count's note; the damaged-packet part is only known while decoding)
    assert again["status"] == "skipped" and row["note"].startswith(again["note"]) and again["n_frames"] == decoded
    cli("flow", tmp_path / "videos", tmp_path / "flow", "--report", tmp_path / "flow.csv")
    flow = pd.read_csv(tmp_path / "flow.csv", keep_default_na=False).iloc[0]
    assert (flow["status"], flow["n_flow"], flow["note"]) == ("done", decoded - 1, row["note"])


def test_audio_only_videos_are_quarantined_with_a_reason(tmp_path):
    videos = tmp_path / "videos" / "Cls"
    videos.mkdir(parents=True)
    for suffix in ("mp4", "avi"):
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", videos / f"sound_{suffix}.{suffix}")
    cli("frames", tmp_path / "videos", tmp_path / "frames", "--report", tmp_path / "r.csv")
    report = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    assert report["status"].tolist() == ["quarantined: no video stream (audio only)"] * 2
    assert not (tmp_path / "frames").exists() or not list((tmp_path / "frames").rglob("*.jpg"))
    cli("flow", tmp_path / "videos", tmp_path / "flow", "--report", tmp_path / "f.csv")
    flow = pd.read_csv(tmp_path / "f.csv", keep_default_na=False)
    assert flow["status"].tolist() == ["quarantined: no video stream (audio only)"] * 2


def entries(root):
    # os.walk skips what vanishes while it walks (the run under watch renames its temporaries into place)
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(root))


def run_killed(args, watch, thresholds):
    """Start `python -m prep ARGS` once per threshold and SIGKILL its process group as soon as ``watch`` holds that
    many entries (temporaries included) — a random moment in the middle of the work; the kills that landed."""
    killed = 0
    for threshold in thresholds:
        process = subprocess.Popen([sys.executable, "-m", "prep", *map(str, args)], cwd=REPO, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        while process.poll() is None:
            if entries(watch) >= threshold:
                os.killpg(process.pid, signal.SIGKILL)
                killed += 1
                break
            time.sleep(0.002)
        process.wait()
    return killed


def normalised(report):
    frame = pd.read_csv(report, keep_default_na=False).drop(columns=["seconds"])
    frame["status"] = frame["status"].replace("skipped", "done")
    return frame


@pytest.mark.parametrize("layout, algorithm", [("tree", "farneback"),
                                               pytest.param("pack", "farneback", marks=pytest.mark.slow),
                                               pytest.param("tree", "tvl1", marks=pytest.mark.slow)])
def test_kill_minus_nine_then_rerun_gives_the_same_bytes(synthetic_small, tmp_path, layout, algorithm):
    """frames + flow killed at random moments, several times, then rerun: byte for byte the uninterrupted run.

    tree: mmaction2's layout, flow in place beside the frames; pack: frames and flow as packs, separate trees."""
    source = synthetic_small["root"] / "raw" / "videos"
    pack = ["--pack"] if layout == "pack" else []

    def stages(root, report_suffix=""):
        frames = ["frames", source, root / "rawframes", *pack, "--report", root / f"frames{report_suffix}.csv"]
        # tree: mmaction2 layout (flow in place); pack: separate flow tree of packs
        flow_out = root / "rawframes" if layout == "tree" else root / "flow"
        flow = ["flow", root / "rawframes", flow_out, *pack, "--algorithm", algorithm,
                "--report", root / f"flow{report_suffix}.csv"]
        return frames, flow

    reference = tmp_path / "reference"
    sizes = []  # entries in the output tree before and after each stage
    for args in stages(reference):
        before = entries(args[2])
        run_prep(*args)
        sizes.append((before, entries(args[2])))

    interrupted = tmp_path / "interrupted"
    rng = random.Random(1234)
    landed = 0
    for args, (before, after) in zip(stages(interrupted), sizes):
        landed += run_killed(args, args[2], sorted(rng.randint(before + 1, after - 1) for _ in range(3)))
        run_prep(*args)  # to completion
    assert landed >= 3
    assert tree_files(interrupted / "rawframes") == tree_files(reference / "rawframes")
    if layout == "pack":
        assert tree_files(interrupted / "flow") == tree_files(reference / "flow")
    stray = [p for p in interrupted.rglob("*") if p.name.endswith(".tmp")]
    assert stray == []
    for name in ("frames.csv", "flow.csv"):
        pd.testing.assert_frame_equal(normalised(interrupted / name), normalised(reference / name))


def test_a_flow_shard_needs_only_the_frames_shards_the_workflow_names():
    """workflow/rules/flow.smk: flow shard j depends on frames shards s ≡ j (mod gcd(R, F)) — enough for any list."""
    import math

    from prep.base.shards import select_shard

    videos = [f"c{k % 7}/v{k:04d}" for k in range(997)]
    for frames_shards, flow_shards in ((2, 4), (256, 1024), (6, 4), (5, 3), (4, 2)):
        owner = {v: s for s in range(frames_shards) for v in select_shard(videos, s, frames_shards)}
        step = math.gcd(frames_shards, flow_shards)
        for j in range(flow_shards):
            needed = {owner[v] for v in select_shard(videos, j, flow_shards)}
            assert needed <= set(range(j % step, frames_shards, step))


def test_a_shard_removes_only_its_own_videos_temporaries(videos, tmp_path):
    """Shards run side by side in the same class directories: a starting shard must not delete the work in progress
    of another (it did: the pipeline's second flow shard lost its temporary directory mid-video)."""
    out = tmp_path / "frames"
    ids = sorted(p.relative_to(videos).with_suffix("").as_posix() for p in videos.glob("*/*"))
    mine, other = ids[0], next(v for v in ids[1:] if v.split("/")[0] == ids[0].split("/")[0])
    stale = out / f"{Path(mine).parent}" / f".{Path(mine).name}.killed01.tmp"
    busy = out / f"{Path(other).parent}" / f".{Path(other).name}.inprogr.tmp"
    stale.mkdir(parents=True)
    busy.mkdir(parents=True)
    cli("frames", videos, out, "--num-shards", len(ids), "--shard", ids.index(mine))
    assert not stale.exists() and busy.is_dir() and (out / mine).is_dir() and not (out / other).exists()
