"""Errors a person can act on: each expected problem is one line saying what is wrong and what to do, no traceback.

Each problem is simulated in a subprocess running the real CLI (``python -c PRELUDE`` then the module as
``__main__``): PATH without ffmpeg and imageio_ffmpeg unimportable, OpenCV without ``optflow``, no RAR backend, a
write failing with ENOSPC; plus a missing split file, a missing list for training, and a bad config key.
"""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import BIN, REPO, snakemake_executable

RAR_FIXTURES = Path("/work/shared/fixtures/rar")
ENOSPC_PRELUDE = """
import errno, pathlib
def _full(self, data):
    raise OSError(errno.ENOSPC, 'No space left on device')  # as a failed write(): no file name
pathlib.Path.write_bytes = _full
"""


def run_module(module, *args, prelude="", env=None):
    """``python -m module args`` after ``prelude`` (Python run first, in the same process)."""
    code = f"{prelude}\nimport runpy, sys\nsys.argv = {[module, *map(str, args)]!r}\n" \
           f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=environment)


def assert_one_line_error(result, *needles):
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def tiny_video(path, frames=4):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_missing_ffmpeg(tmp_path):
    prelude = "import sys\nsys.modules['imageio_ffmpeg'] = None  # the wheel not installed"
    result = run_module("prep", "synth", tmp_path / "raw", "--num-classes", "2", "--videos-per-class", "1",
                        "--min-frames", "2", "--max-frames", "2", "--frame-size", "32", prelude=prelude,
                        env={"PATH": str(tmp_path / "empty")})
    assert_one_line_error(result, "ffmpeg not found", "apt-get install ffmpeg", "pip install imageio-ffmpeg")


def test_opencv_without_contrib(tmp_path):
    (tmp_path / "frames").mkdir()
    prelude = "import cv2\ndel cv2.optflow  # plain opencv-python, no contrib modules"
    result = run_module("prep", "flow", tmp_path / "frames", tmp_path / "flow", prelude=prelude)
    assert_one_line_error(result, "OpenCV without the contrib modules", "opencv-contrib-python-headless")


def test_no_rar_package(tmp_path):
    if not (RAR_FIXTURES / "rar5-solid.rar").is_file():
        pytest.skip("RAR fixtures missing")
    prelude = "import sys\nsys.modules['rarfile'] = None"
    result = run_module("prep", "extract", RAR_FIXTURES / "rar5-solid.rar", tmp_path / "out", prelude=prelude)
    assert_one_line_error(result, "pip install rarfile")


def test_no_rar_tool(tmp_path):
    pytest.importorskip("rarfile")
    if not (RAR_FIXTURES / "rar5-solid.rar").is_file():
        pytest.skip("RAR fixtures missing")
    result = run_module("prep", "extract", RAR_FIXTURES / "rar5-solid.rar", tmp_path / "out",
                        env={"PATH": str(tmp_path / "empty")})  # no unrar, unar or bsdtar
    assert_one_line_error(result, "no RAR extraction tool", "unar")


def test_disk_full_while_writing_frames(tmp_path):
    tiny_video(tmp_path / "videos" / "Walk" / "v_Walk_g01_c01.avi")
    result = run_module("prep", "frames", tmp_path / "videos", tmp_path / "rawframes", "--level", "2",
                        prelude=ENOSPC_PRELUDE)
    line = assert_one_line_error(result, "disk full", str(tmp_path / "rawframes"), "free on the file system")
    assert "img_00001.jpg" in line, line
    assert not list((tmp_path / "rawframes").rglob("img_*.jpg"))  # the partial video was removed


def test_disk_full_while_writing_flow(tmp_path, synthetic_small):
    root = synthetic_small["root"]
    video_id = synthetic_small["index"]["video_id"].iloc[0]
    frames = tmp_path / "rawframes"
    (frames / video_id).parent.mkdir(parents=True)
    os.symlink(root / "rawframes" / video_id, frames / video_id)
    result = run_module("prep", "flow", frames, tmp_path / "flow", "--level", "2", "--algorithm", "farneback",
                        prelude=ENOSPC_PRELUDE)
    assert_one_line_error(result, "disk full", str(tmp_path / "flow"), "flow_x_00001.jpg", "free")


def test_disk_full_while_writing_a_checkpoint(tmp_path, monkeypatch, capsys):
    import torch

    import train.train as train_module

    def full(state, handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch_0001.pt"
    monkeypatch.setattr(train_module, "main",
                        lambda args: train_module.utils.save_checkpoint(checkpoint, {"epoch": 1}))
    for name in "tvc":
        (tmp_path / name).write_text("")
    status = train_module.cli(["--settings", "{}", "--mode", "rgb", "--train-list", str(tmp_path / "t"),
                               "--val-list", str(tmp_path / "v"), "--root", str(tmp_path), "--classes",
                               str(tmp_path / "c"), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "disk full" in err and str(checkpoint) in err and "free on the file system" in err, err
    assert not list(checkpoint.parent.iterdir())  # no half-written temporary left


def test_missing_split_file(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "videos").mkdir()
    result = run_module("prep", "index", "ucf101", tmp_path / "splits", tmp_path / "videos", tmp_path / "i.parquet")
    assert_one_line_error(result, "classInd.txt", "missing")


def test_missing_list_for_training(tmp_path):
    result = run_module("train.train", "--settings", '{"arch": "tsn_r18"}', "--mode", "rgb",
                        "--train-list", tmp_path / "train.txt", "--val-list", tmp_path / "val.txt",
                        "--root", tmp_path, "--classes", tmp_path / "label_map.txt", "--run-dir", tmp_path / "run")
    assert_one_line_error(result, "no such file", "snakemake")


def test_missing_checkpoint_for_evaluation(tmp_path):
    result = run_module("train.evaluate", "score", "--checkpoint", tmp_path / "final.pt", "--list",
                        tmp_path / "val.txt", "--root", tmp_path, "--out", tmp_path / "r.json", "--model", "tsn",
                        "--dataset", "synthetic")
    assert_one_line_error(result, str(tmp_path / "final.pt"), "no such file")


def test_missing_report_input(tmp_path):
    result = run_module("train.report", "curves", tmp_path / "log.jsonl", "--out", tmp_path / "c.png")
    assert_one_line_error(result, "log.jsonl", "no training log")


def test_bad_config_key_is_named_without_traceback(tmp_path):
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["frames"]["shards"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), f"--configfile={bad}", "-n"], capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert "Error validating config file" in output and "shards" in output, output


# --- --help of every entry point ------------------------------------------------------------------------------------

HELP = {
    "prep": ["index", "synth", "download", "fetch", "extract", "unpack", "arrange", "frames", "flow", "annotations",
             "lists", "check"],
    "train.train": ["--settings", "--mode", "--train-list", "--val-list", "--root", "--classes", "--run-dir"],
    "train.evaluate": ["score", "fuse", "summary"],
    "train.report": ["table", "curves", "classes", "dataset", "flow"],
    "train.launch": ["--nnodes", "--nproc-per-node"],
}


@pytest.mark.parametrize("module", sorted(HELP))
def test_help_lists_every_verb(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.startswith("usage:"), result.stdout
    missing = [verb for verb in HELP[module] if verb not in result.stdout]
    assert not missing, (missing, result.stdout)
