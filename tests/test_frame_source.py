"""prep.base.frame_source over real trees: JPEGs the frames and flow stages wrote, in folders and packs, and every
naming convention of the table."""
import os
import pickle
import shutil

import cv2
import numpy as np
import pytest

from prep.base import frame_source
from prep.base.atomic import atomic_file
from prep.base.frame_source import (FLOW_MARKER, FRAMES_MARKER, NAMINGS, FrameError, count_frames, frame_videos,
                                    open_frames)
from prep.base.media import encode_video
from prep.base.packed import PackWriter

VIDEO = "Wave/v_Wave_g01_c01"
NUM_FRAMES = 7


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """A real video through the frames stage (folder and pack) and the flow stage (folder and pack)."""
    from prep.flow import run_flow
    from prep.frames import run_frames

    root = tmp_path_factory.mktemp("frame_source")
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.uniform(0, 255, (12, 16, 3)).astype(np.uint8), (64, 48), interpolation=cv2.INTER_CUBIC)
    clip = np.stack([np.roll(base, 2 * k, axis=1) for k in range(NUM_FRAMES)])
    video = root / "videos" / f"{VIDEO}.avi"
    video.parent.mkdir(parents=True)
    encode_video(clip, video)
    for pack in (False, True):
        out = root / ("packed" if pack else "folders")
        run_frames([(VIDEO, video)], out / "rgb", naming="mmaction", pack=pack)
        run_flow([VIDEO], out / "rgb", out / "flow", algorithm="farneback", pack=pack)
    return root


@pytest.mark.parametrize("tree", ["folders", "packed"])
def test_rgb_frames_written_by_the_frames_stage(trees, tree):
    reference = sorted((trees / "folders" / "rgb" / VIDEO).glob("img_*.jpg"))
    assert len(reference) == NUM_FRAMES
    with open_frames(trees / tree / "rgb", VIDEO) as frames:
        assert frames.storage == ("packs" if tree == "packed" else "frames")
        assert len(frames) == NUM_FRAMES == frames.verify()
        for k, path in enumerate(reference, start=1):
            assert frames.read_bytes(k) == path.read_bytes()
            image = frames.read(k)
            assert image.shape == (48, 64, 3) and image.dtype == np.uint8
            assert np.array_equal(image, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))  # RGB order
        small = frames.read(3, reduce=4)
        assert small.shape == (12, 16, 3)
        assert np.abs(small.astype(int) - cv2.resize(frames.read(3), (16, 12), interpolation=cv2.INTER_AREA)).mean() < 12
        assert frames.read(1, reduce=8).shape == (6, 8, 3)
    assert count_frames(trees / tree / "rgb", VIDEO) == NUM_FRAMES


@pytest.mark.parametrize("tree", ["folders", "packed"])
def test_flow_frames_written_by_the_flow_stage(trees, tree):
    with open_frames(trees / tree / "flow", VIDEO, "flow") as flow:
        assert len(flow) == NUM_FRAMES - 1 == flow.verify()
        for k in range(1, NUM_FRAMES):
            both = flow.read(k)
            assert both.shape == (48, 64, 2) and both.dtype == np.uint8
            for axis, component in enumerate("xy"):
                plane = cv2.imdecode(np.frombuffer(flow.read_bytes(k, component), np.uint8), cv2.IMREAD_GRAYSCALE)
                assert np.array_equal(both[..., axis], plane)
        assert flow.read(2, reduce=2).shape == (24, 32, 2)
        # the object moves right by 2 px a frame: x flow above the zero level 127.5, y near it
        assert flow.read(1)[..., 0].mean() > 128 > abs(flow.read(1)[..., 1].mean() - 127.5)
        with pytest.raises(FrameError, match="flow_x_00007.jpg: missing frame"):
            flow.read(NUM_FRAMES)
        with pytest.raises(ValueError, match="component"):
            flow.read_bytes(1)
    assert count_frames(trees / tree / "flow", VIDEO, "flow") == NUM_FRAMES - 1


def write_tree(root, naming, storage, rgb, flow, markers):
    """One video's frames under ``naming``: rgb JPEG bytes 1..len(rgb) and flow (x, y) pairs, plus markers."""
    names = NAMINGS[naming]
    entries = [(names.name(k), data) for k, data in enumerate(rgb, start=1)]
    for k, (x, y) in enumerate(flow, start=1):
        entries += [(names.name(k, "flow", "x"), x), (names.name(k, "flow", "y"), y)]
    if markers:
        entries += [(FRAMES_MARKER, f"{len(rgb)}\n".encode()), (FLOW_MARKER, f"{len(flow)}\n".encode())]
    if storage == "packs":
        with atomic_file(root / f"{VIDEO}.pack", "wb") as handle:
            writer = PackWriter(handle)
            for name, data in entries:
                writer.add(name, data)
            writer.finish()
    else:
        (root / VIDEO).mkdir(parents=True)
        for name, data in entries:
            (root / VIDEO / name).write_bytes(data)


@pytest.mark.parametrize("storage", ["frames", "packs"])
@pytest.mark.parametrize("markers", [True, False])
@pytest.mark.parametrize("naming", sorted(NAMINGS))
def test_every_naming_in_folders_and_packs(trees, tmp_path, naming, storage, markers):
    with open_frames(trees / "folders" / "rgb", VIDEO) as source:
        rgb = [source.read_bytes(k) for k in range(1, NUM_FRAMES + 1)]
    with open_frames(trees / "folders" / "flow", VIDEO, "flow") as source:
        flow = [(source.read_bytes(k, "x"), source.read_bytes(k, "y")) for k in range(1, NUM_FRAMES)]
    n_flow = NAMINGS[naming].flow_count(NUM_FRAMES)
    if n_flow == NUM_FRAMES:  # MindSpore-I3D: a zero first flow frame, then the same N−1
        flow = [flow[0]] + flow
    write_tree(tmp_path, naming, storage, rgb, flow, markers)  # rgb and flow in one folder: names never collide
    with open_frames(tmp_path, VIDEO, "rgb", naming) as frames:
        assert frames.storage == storage
        assert len(frames) == NUM_FRAMES == frames.verify()
        assert frames.read_bytes(NUM_FRAMES) == rgb[-1]
        assert frames.read(2).shape == (48, 64, 3)
    with open_frames(tmp_path, VIDEO, "flow", naming) as frames:
        assert len(frames) == n_flow == frames.verify()
        assert frames.read_bytes(n_flow, "y") == flow[-1][1]
        assert frames.read(1).shape == (48, 64, 2)
    other = "3dresnets" if naming != "3dresnets" else "mmaction"
    with open_frames(tmp_path, VIDEO, "rgb", other) as frames:  # another convention sees no frames here
        assert frames.contiguous()[0] == 0


def test_mindspore_flow_layout_facts():
    naming = NAMINGS["3dresnets"]
    assert naming.name(1, "flow", "x") == "image_00001x.jpg" and naming.name(12, "flow", "y") == "image_00012y.jpg"
    assert naming.index_of("image_00001x.jpg") is None and naming.index_of("image_00003.jpg") == 3
    assert naming.flow_count(10) == 10 and [naming.flow_pair(k) for k in (1, 2, 3)] == [(1, 1), (1, 2), (2, 3)]
    assert NAMINGS["mmaction"].flow_count(10) == 9 and NAMINGS["mmaction"].flow_pair(2) == (2, 3)
    assert NAMINGS["mmaction_k400_flow"].name(5, "flow", "x") == "x_00005.jpg"
    assert NAMINGS["mmaction_k400_flow"].index_of("flow_x_00005.jpg", "flow", "x") is None


def test_counts_come_from_markers_without_listing(trees, tmp_path, monkeypatch):
    shutil.copytree(trees / "folders", tmp_path / "copy")

    def no_listing(*args):
        raise AssertionError("a directory was listed")

    monkeypatch.setattr(os, "listdir", no_listing)
    monkeypatch.setattr(os, "scandir", no_listing)
    assert count_frames(tmp_path / "copy" / "rgb", VIDEO) == NUM_FRAMES
    assert count_frames(tmp_path / "copy" / "flow", VIDEO, "flow") == NUM_FRAMES - 1
    with open_frames(tmp_path / "copy" / "rgb", VIDEO) as frames:
        frames.read(NUM_FRAMES)


def test_gaps_strays_and_absent_videos_are_one_line_errors(trees, tmp_path):
    shutil.copytree(trees / "folders" / "rgb", tmp_path / "rgb")
    folder = tmp_path / "rgb" / VIDEO
    (folder / FRAMES_MARKER).unlink()
    (folder / "img_00004.jpg").unlink()
    with open_frames(tmp_path / "rgb", VIDEO) as frames:
        assert len(frames) == 3  # the contiguous run
        with pytest.raises(FrameError, match=r"not numbered 1..N: img_00001.jpg..img_00003.jpg then img_00005.jpg"):
            frames.verify()
        with pytest.raises(FrameError, match=r"img_00004.jpg: missing frame"):
            frames.read(4)
        with pytest.raises(FrameError, match="numbered from 1"):
            frames.read(0)
    (folder / "img_00002.jpg").write_bytes(b"not a jpeg")
    with open_frames(tmp_path / "rgb", VIDEO) as frames, pytest.raises(FrameError, match="img_00002.jpg: unreadable"):
        frames.read(2)
    with pytest.raises(FrameError, match="no frames"):
        open_frames(tmp_path / "rgb", "Wave/absent")
    for outside in ("../rgb/" + VIDEO, "/etc", "Wave//x", "Wave\\..\\x"):
        with pytest.raises(FrameError, match="video id: .* cannot be a file or folder name"):
            open_frames(tmp_path / "rgb", outside)
    with pytest.raises(FrameError, match="unknown frame naming"):
        open_frames(tmp_path / "rgb", VIDEO, naming="img")
    (folder / FRAMES_MARKER).write_text("many\n")
    with pytest.raises(FrameError, match="n_frames: not a frame count"):
        count_frames(tmp_path / "rgb", VIDEO)
    damaged = tmp_path / "rgb" / "Wave" / "cut.pack"
    damaged.write_bytes((trees / "packed" / "rgb" / f"{VIDEO}.pack").read_bytes()[:-10])
    with pytest.raises(FrameError, match="cut.pack: not a frame pack"):
        count_frames(tmp_path / "rgb", "Wave/cut")


def test_pickled_sources_reopen_their_pack(trees):
    with open_frames(trees / "packed" / "rgb", VIDEO) as frames:
        first = frames.read(1)
        copy = pickle.loads(pickle.dumps(frames))  # as a DataLoader hands a dataset to its workers
    with copy:
        assert np.array_equal(copy.read(1), first)


def test_frame_videos_finds_flat_class_and_packed_trees(trees, tmp_path):
    assert frame_videos(trees / "folders" / "rgb") == [VIDEO]
    assert frame_videos(trees / "packed" / "rgb") == [VIDEO]
    assert frame_videos(trees / "packed" / "rgb", level=2) == [VIDEO]
    shutil.copytree(trees / "folders" / "rgb" / "Wave", tmp_path / "flat")
    (tmp_path / "flat" / ".tmp_hidden").mkdir()
    assert frame_videos(tmp_path / "flat") == ["v_Wave_g01_c01"]
    assert frame_videos(tmp_path / "flat", level=1) == ["v_Wave_g01_c01"]
    with pytest.raises(FrameError, match="no such directory"):
        frame_videos(tmp_path / "absent")



def test_frame_source_is_the_only_home_of_frame_names():
    """No module outside the frame source spells a frame-name template."""
    import re
    from pathlib import Path

    repo = Path(frame_source.__file__).resolve().parents[2]
    literal = re.compile(r"""["'](img_|image_|flow_x_|flow_y_)(\{|["'])""")
    offenders = [f"{path.relative_to(repo)}:{number}" for folder in ("prep", "train")
                 for path in sorted((repo / folder).rglob("*.py")) if path.name != "frame_source.py"
                 for number, line in enumerate(path.read_text().splitlines(), start=1) if literal.search(line)]
    assert not offenders, offenders


@pytest.mark.parametrize("in_place", [False, True])
def test_flow_stage_writes_the_mindspore_layout(trees, tmp_path, in_place):
    """``prep flow --naming 3dresnets``: image_NNNNNx/y.jpg, N of them, the first from frame 1 to itself."""
    from prep.flow import run_flow
    from prep.frames import run_frames

    video = trees / "videos" / f"{VIDEO}.avi"
    run_frames([(VIDEO, video)], tmp_path / "rgb", naming="3dresnets")
    flow_root = tmp_path / "rgb" if in_place else tmp_path / "flow"
    records = run_flow([VIDEO], tmp_path / "rgb", flow_root, algorithm="farneback", naming="3dresnets")
    assert records[0]["status"] == "done" and records[0]["n_flow"] == NUM_FRAMES
    assert (flow_root / VIDEO / "image_00001x.jpg").is_file() and not list((flow_root / VIDEO).glob("flow_*"))
    with open_frames(flow_root, VIDEO, "flow", "3dresnets") as flow:
        assert len(flow) == NUM_FRAMES == flow.verify()
        zero = flow.read(1).astype(int)
        assert np.abs(zero - 128).max() <= 2 and abs(zero.mean() - 128) < 0.5  # a frame to itself: no motion
        with open_frames(trees / "folders" / "flow", VIDEO, "flow") as mmaction:  # then the same flow, one later
            assert flow.read_bytes(3, "x") == mmaction.read_bytes(2, "x")
    with open_frames(tmp_path / "rgb", VIDEO, naming="3dresnets") as frames:
        assert len(frames) == NUM_FRAMES == frames.verify()  # flow beside the frames does not disturb their count
    again = run_flow([VIDEO], tmp_path / "rgb", flow_root, algorithm="farneback", naming="3dresnets")
    assert again[0]["status"] == "skipped" and again[0]["n_flow"] == NUM_FRAMES
