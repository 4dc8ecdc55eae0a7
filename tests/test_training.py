"""Training resumes exactly: killed mid-epoch or stopped by SIGTERM, the final weights equal an uninterrupted run's."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from train.evaluate import EvaluationError, fuse_scores, metrics

SETTINGS = {"arch": "tsn_r18", "model_options": {"base_channels": 4}, "num_clips": 2, "input_size": 32,
            "resize_short": 40, "flip": True, "epochs": 5, "batch_size": 1, "data_workers": 0, "lr": 0.01,
            "deterministic": True, "seed": 3}


def write_lists(synthetic_small, directory):
    directory.mkdir(exist_ok=True)
    rows = synthetic_small["frames"]
    labels = dict(zip(synthetic_small["index"]["video_id"], synthetic_small["index"]["label"]))
    (directory / "train.txt").write_text("".join(f"{r['video_id']} {r['n_frames']} {labels[r['video_id']]}\n"
                                                 for r in rows))
    (directory / "classes.txt").write_text("\n".join(synthetic_small["classes"]) + "\n")
    return directory


def train_command(lists, root, run_dir, settings=SETTINGS):
    return [sys.executable, "-m", "train.train", "--settings", json.dumps(settings), "--mode", "rgb",
            "--train-list", str(lists / "train.txt"), "--val-list", str(lists / "train.txt"), "--root", str(root),
            "--classes", str(lists / "classes.txt"), "--run-dir", str(run_dir), "--threads", "1"]


def run_to_end(command):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def interrupt(command, sig, after_lines):
    """Start training and send ``sig`` once ``after_lines`` epoch lines were printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    seen = 0
    for line in process.stdout:
        seen += line.startswith("{")
        if seen >= after_lines:
            process.send_signal(sig)  # epoch 2 of 5 has just begun: plenty of training left to interrupt
            break
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def final_weights(run_dir):
    return torch.load(run_dir / "final.pt", weights_only=False)["model"]


@pytest.fixture(scope="module")
def reference(synthetic_small, tmp_path_factory):
    lists = write_lists(synthetic_small, tmp_path_factory.mktemp("lists"))
    run_dir = tmp_path_factory.mktemp("reference")
    run_to_end(train_command(lists, synthetic_small["root"] / "rawframes", run_dir))
    return lists, final_weights(run_dir)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_exits_cleanly_and_resume_is_exact(synthetic_small, reference, tmp_path):
    lists, expected = reference
    command = train_command(lists, synthetic_small["root"] / "rawframes", tmp_path / "run")
    code, out, err = interrupt(command, signal.SIGTERM, after_lines=1)
    assert code == 0, err[-2000:]
    assert "stopped by signal" in out and "Traceback" not in err
    assert not (tmp_path / "run" / "final.pt").exists()
    assert list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    resumed = run_to_end(command)
    assert "resuming from" in resumed.stdout
    assert_same_weights(final_weights(tmp_path / "run"), expected)


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_gives_identical_weights(synthetic_small, reference, tmp_path):
    lists, expected = reference
    command = train_command(lists, synthetic_small["root"] / "rawframes", tmp_path / "run")
    code, _, _ = interrupt(command, signal.SIGKILL, after_lines=1)
    assert code == -signal.SIGKILL
    run_to_end(command)
    assert_same_weights(final_weights(tmp_path / "run"), expected)


def test_metrics_by_hand():
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]]).numpy()
    result = metrics(probabilities, [0, 1, 1, 1], 3)
    assert result["top1"] == 0.5  # videos 0 and 3 right
    assert result["confusion_matrix"] == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
    # mmaction2's definition: class 2 has no videos but is predicted once, so it counts, as 0
    assert result["mean_class_accuracy"] == pytest.approx((1.0 + 1 / 3 + 0.0) / 3)


def test_fusion_matches_videos_by_id():
    import numpy as np

    rgb = {"video_ids": np.array(["a", "b"]), "labels": np.array([0, 1]),
           "efficient": np.array([[0.6, 0.4], [0.6, 0.4]]), "accurate": np.array([[0.6, 0.4], [0.6, 0.4]])}
    flow = {"video_ids": np.array(["b", "a"]), "labels": np.array([1, 0]),
            "efficient": np.array([[0.0, 1.0], [1.0, 0.0]]), "accurate": np.array([[0.0, 1.0], [1.0, 0.0]])}
    fused, labels, ids = fuse_scores(rgb, flow, (1.0, 1.0))  # streams without settings: probabilities
    assert ids == ["a", "b"]
    assert np.allclose(fused["accurate"], [[0.8, 0.2], [0.3, 0.7]])
    flow["video_ids"] = np.array(["b", "c"])
    with pytest.raises(EvaluationError, match="different videos"):
        fuse_scores(rgb, flow, (1.0, 1.0))
