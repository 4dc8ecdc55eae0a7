import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def run_prep(*args, check=True, cwd=None):
    """`python -m prep …` in a subprocess, as a user runs it; returns the CompletedProcess."""
    result = subprocess.run([sys.executable, "-m", "prep", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd or REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if check and result.returncode != 0:
        raise AssertionError(f"prep {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory):
    """A small synthetic dataset (4 classes × 2 videos) with frames and flow, built once per session."""
    from prep.datasets.synthetic import generate
    from prep.flow import run_flow
    from prep.frames import run_frames
    from prep.base.index_file import write_index
    from prep.datasets import build_index

    root = tmp_path_factory.mktemp("synthetic")
    generate(root / "raw", seed=3, num_classes=4, videos_per_class=2, frame_size=48, min_frames=6, max_frames=9,
             test_fraction=0.5)
    frame, classes = build_index("synthetic", root / "raw" / "splits", root / "raw" / "videos")
    write_index(frame, classes, root / "index.parquet")
    videos = [(v, root / "raw" / "videos" / p) for v, p in zip(frame["video_id"], frame["video_path"])]
    frames_records = run_frames(videos, root / "rawframes", report=root / "frames.csv", short_side=None, size=None,
                                quality=95, naming="mmaction")
    flow_records = run_flow(list(frame["video_id"]), root / "rawframes", root / "flow", report=root / "flow.csv",
                            algorithm="tvl1", bound=20.0, quality=95)
    return {"root": root, "index": frame, "classes": classes, "frames": frames_records, "flow": flow_records}


def snakemake_executable():
    exe = BIN / "snakemake"
    return str(exe) if exe.exists() else shutil.which("snakemake")


def snakemake(workdir, *args, configfile=TINY, check=True, env=None):
    """`snakemake` on the repository's Snakefile in ``workdir``; ``env`` (default os.environ) gets PATH/PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [env.get("PYTHONPATH", ""), str(REPO)])))
    command = [snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               f"--configfile={configfile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
                         if "rror" in p.read_text())
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stderr[-5000:]}\n{logs}")
    return result


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole pipeline on the tiny configuration, once per session (tests/test_end_to_end.py, test_report.py)."""
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, "--cores", "2", "all")
    return workdir


def decoded_frames(path, gray=False):
    """Every frame OpenCV decodes from a video (BGR, or grayscale): the reference the extracted frames must equal."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame)


@pytest.fixture
def memory_limit():
    """A soft address-space limit 1 GiB above what this process maps now, for tests that feed bombs: one that
    gets through is a MemoryError in the test, not a dead host. Restored afterwards."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as handle:
        mapped = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    limit = mapped + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(hard, limit), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
