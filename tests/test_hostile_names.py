"""Names from outside are data (issue 15): archive names, archive members and video file names that could address
something outside their folder, collide with our bookkeeping, or crash a decoder."""
import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from prep.base import archives
from prep.base import names
from prep.base.media import encode_video

REPO = Path(__file__).resolve().parents[1]
NOT_UTF8 = os.fsdecode(b"v_bad\xff\xfe name")  # what os.listdir gives for a name that is not UTF-8


def prep(*args, cwd=None):
    """`python -m prep …` in its own process: a segfault shows as exit -11 instead of killing the test run."""
    return subprocess.run([sys.executable, "-m", "prep", *map(str, args)], capture_output=True, text=True,
                          errors="replace", cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def tree(root):
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*"))


# ---------------------------------------------------------------------------------------------------------------------
# names.py


@pytest.mark.parametrize("name,problem", [
    ("..", "not a usable name"), (".", "not a usable name"), ("", "not a usable name"),
    ("a/b", "path separator"), ("a\\b", "path separator"), ("a\nb", "control characters"),
    (NOT_UTF8, "not valid UTF-8"), (".UCF101.rar.partial", "bookkeeping"), (".x.extracted", "bookkeeping"),
    (".missing.csv.tmp", "bookkeeping"),
])
def test_component_problems(name, problem):
    assert problem in names.component_problem(name)
    with pytest.raises(names.UnsafeNameError, match="archive name: .* cannot be a file or folder name"):
        names.safe_component(name, "archive name")


@pytest.mark.parametrize("name", ["UCF101.rar", "brush_hair & (Ann's) !;,+.avi", ".DS_Store", "уииоотивл.txt",
                                  "a b.tar.gz"])
def test_ordinary_names_pass(name):
    assert names.component_problem(name) is None
    assert names.member_problem(["top", name]) is None


def test_printable_shows_the_bytes():
    assert names.printable(NOT_UTF8) == "v_bad\\xff\\xfe name"


# ---------------------------------------------------------------------------------------------------------------------
# archive names


def test_archive_named_dots_zip_cannot_leave_its_folder(tmp_path):
    """`...zip` has the stem `..`: `prep unpack` extracted it into OUT_DIR/.. and replaced downloads/."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    dots = make_zip(downloads / "...zip", [("downloads", b"replaces the folder"), ("evil.txt", b"x")])
    other = make_zip(downloads / "UCF101TrainTestSplits-RecognitionTask.zip", [("ucfTrainTestlist/classInd.txt",
                                                                                 b"1 A\r\n")])
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"dataset": "ucf101", "archives": [str(dots), str(other)], "trees": [],
                                   "files": [], "failed": []}))
    before = {p: p.read_bytes() for p in (dots, other)}
    result = prep("unpack", "ucf101", sources, tmp_path / "extracted")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "archive name '...zip' gives no usable folder name" in result.stderr
    assert {p: p.read_bytes() for p in (dots, other)} == before  # both archives still there
    assert tree(tmp_path) == ["downloads", "downloads/...zip", "downloads/UCF101TrainTestSplits-RecognitionTask.zip",
                              "extracted", "sources.json"]
    assert list((tmp_path / "extracted").iterdir()) == []


@pytest.mark.parametrize("inner_name", ["...zip", ".hidden.zip", "...tar.gz"])
def test_nested_archive_named_dots_leaves_nothing_behind(tmp_path, inner_name):
    """An inner `...zip` was extracted into the parent of its folder — outside the partial extraction — and its
    files stayed after the outer archive was refused for a later member."""
    inner = make_zip(tmp_path / "inner.zip", [("evil.txt", b"x"), ("sub/deeper.txt", b"y")])
    bad_tail = make_zip(tmp_path / "tail.zip", [("../escape.txt", b"z")])
    outer = make_zip(tmp_path / "hmdb51_org.zip", [("a_class.zip", make_zip(tmp_path / "a.zip", [("v.avi", b"v")])
                                                    .read_bytes()),
                                                   (inner_name, inner.read_bytes()), ("zz.zip", bad_tail.read_bytes())])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    with pytest.raises(archives.UnsafeArchiveError) as raised:
        archives.extract_archive(outer, out, nested=True)
    message = str(raised.value)
    assert "\n" not in message and "hmdb51_org.zip" in message and f"refusing member {inner_name!r}" in message
    assert tree(out) == ["keep.txt"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub").exists()


def test_archive_named_after_the_unpack_report_is_refused(tmp_path):
    archive = make_zip(tmp_path / "unpack_failed.csv.zip", [("x.txt", b"x")])
    with pytest.raises(names.UnsafeNameError, match="the name of our own report"):
        archives.unpack([archive], tmp_path / "out")


def test_archives_of_one_stem_get_distinct_folders(tmp_path):
    a1 = make_zip((tmp_path / "m1").mkdir() or tmp_path / "m1" / "a.zip", [("x.txt", b"1")])
    a2 = make_zip((tmp_path / "m2").mkdir() or tmp_path / "m2" / "a.zip", [("x.txt", b"2")])
    a3 = make_zip(tmp_path / "a.2.zip", [("x.txt", b"3")])
    out = tmp_path / "out"
    assert archives.unpack([a1, a2, a3], out) == []
    contents = sorted((p.parent.name, p.read_bytes()) for p in out.glob("*/x.txt"))
    assert contents == [("a", b"1"), ("a.2", b"2"), ("a.2.2", b"3")]


# ---------------------------------------------------------------------------------------------------------------------
# video file names


@pytest.fixture
def odd_videos(tmp_path):
    """SRC/cls/{ok.avi, <not UTF-8>.avi, clip_%03d.avi}: one small video under three names."""
    src = tmp_path / "videos"
    (src / "cls").mkdir(parents=True)
    clip = np.random.RandomState(0).randint(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    encode_video(clip, src / "cls" / "ok.avi")
    os.link(src / "cls" / "ok.avi", os.fsencode(src / "cls") + b"/v_bad\xff\xfe name.avi")
    os.link(src / "cls" / "ok.avi", src / "cls" / "clip_%03d.avi")
    return src


def read_report(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["video_id"]: row for row in csv.DictReader(handle)}


def test_video_name_not_utf8_through_frames_is_quarantined_and_the_shard_goes_on(odd_videos, tmp_path):
    """OpenCV segfaulted on the name (exit 139, every rerun the same)."""
    out, report = tmp_path / "frames", tmp_path / "frames.csv"
    for _run in range(2):  # a rerun neither crashes nor redoes the finished videos
        result = prep("frames", odd_videos, out, "--report", report)
        assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    rows = read_report(report)
    assert rows["cls/ok"]["n_frames"] == "6" and rows["cls/clip_%03d"]["n_frames"] == "6"
    bad = rows["cls/v_bad\\xff\\xfe name"]
    assert bad["status"] == "quarantined: its file name is not valid UTF-8 (lists and reports are UTF-8 text)"
    assert "v_bad\\xff\\xfe name.avi" in bad["note"]
    assert sorted(os.listdir(out / "cls")) == ["clip_%03d", "ok"]


def test_video_name_not_utf8_through_flow_is_quarantined_and_the_shard_goes_on(odd_videos, tmp_path):
    out, report = tmp_path / "flow", tmp_path / "flow.csv"
    result = prep("flow", odd_videos, out, "--report", report, "--algorithm", "farneback")
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    rows = read_report(report)
    assert rows["cls/ok"]["n_flow"] == "5" and rows["cls/clip_%03d"]["n_flow"] == "5"
    assert rows["cls/v_bad\\xff\\xfe name"]["status"].startswith("quarantined: its file name is not valid UTF-8")
    assert sorted(os.listdir(out / "cls")) == ["clip_%03d", "ok"]


def test_a_video_under_any_name_decodes(odd_videos, tmp_path):
    """The decoder itself takes any name (it opens a plain-named link): a caller that keeps its own ids can use it.
    In a process of its own: a segfault must fail this test, not end the test run."""
    code = ("import os, sys; from prep import frames; from prep.base import media;"
            "path = os.fsdecode(sys.argv[1].encode()) + os.fsdecode(b'\\xff.avi');"
            "record = frames.extract_frames(path, sys.argv[2]); facts = media.probe(path);"
            "print(record['status'], record['n_frames'], facts['container_frames'])")
    os.link(odd_videos / "cls" / "ok.avi", os.fsencode(odd_videos / "cls" / "v") + b"\xff.avi")
    result = subprocess.run([sys.executable, "-c", code, str(odd_videos / "cls" / "v"), str(tmp_path / "x")],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split() == ["done", "6", "6"]


def test_safe_relative_checks_every_component():
    assert names.safe_relative("ApplyEyeMakeup\\v_a.avi", "list") == "ApplyEyeMakeup/v_a.avi"
    with pytest.raises(names.UnsafeNameError, match=r"trainlist01.txt: line 3: '..' cannot be"):
        names.safe_relative("A/../../x.avi", "trainlist01.txt: line 3")
