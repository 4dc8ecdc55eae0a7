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
    return lists, final_weights(run_dir), run_dir


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_exits_cleanly_and_resume_is_exact(synthetic_small, reference, tmp_path):
    lists, expected, _ = reference
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
def test_sigterm_to_the_process_group_spares_the_data_loader_workers(synthetic_small, reference, tmp_path):
    """torchrun and SLURM signal the whole process group: DataLoader workers must not die of it mid-epoch (the
    training process would crash instead of writing its checkpoint)."""
    lists, _, _ = reference
    command = train_command(lists, synthetic_small["root"] / "rawframes", tmp_path / "run",
                            {**SETTINGS, "data_workers": 2})
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    for line in process.stdout:
        if line.startswith("{"):
            os.killpg(process.pid, signal.SIGTERM)  # the process and its workers, as torchrun's killpg
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "stopped by signal" in out and "Traceback" not in err and "killed by signal" not in err, err[-3000:]
    assert (tmp_path / "run" / "checkpoints").is_dir() and not (tmp_path / "run" / "final.pt").exists()


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_gives_identical_weights(synthetic_small, reference, tmp_path):
    lists, expected, _ = reference
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


@pytest.mark.slow
def test_checkpoints_carry_run_info_and_the_log_the_data_wait(reference):
    _, _, run_dir = reference
    state = torch.load(run_dir / "final.pt", weights_only=False)
    info = state["run_info"]
    assert {k: info[k] for k in ("world_size", "batch_per_process", "total_batch", "effective_lr", "pretrained",
                                 "epoch")} == {"world_size": 1, "batch_per_process": 1, "total_batch": 1,
                                               "effective_lr": 0.01, "pretrained": None, "epoch": 5}
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert (info["git_commit"] or "").split("+")[0] == (head.stdout.strip() if head.returncode == 0 else "")
    epoch_state = torch.load(sorted((run_dir / "checkpoints").glob("epoch_*.pt"))[-1], weights_only=False)
    assert epoch_state["run_info"]["epoch"] == epoch_state["epoch"] and "lr_scheduler" in epoch_state
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert 0 <= record["data_wait_fraction"] <= 1 and record["clips_per_second"] > 0


class SlowItems(torch.utils.data.Dataset):
    """Clips that take ``seconds`` each to load (a starved GPU's view of a slow decoder)."""

    def __init__(self, count, seconds):
        self.count, self.seconds = count, seconds

    def __len__(self):
        return self.count

    def __getitem__(self, item):
        import time

        time.sleep(self.seconds)
        return torch.zeros(3, 2, 16, 16, dtype=torch.uint8), item % 2, item


class SlowModel(torch.nn.Module):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.fc = torch.nn.Linear(3 * 2 * 16 * 16, 2)

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return self.fc(x.flatten(1))


class NeverStop:
    signal = None

    def requested(self):
        return False

    def agree(self, finite):
        return bool(finite), False


@pytest.mark.parametrize("load_seconds, step_seconds, low, high", [(0.5, 0.0, 0.6, 1.0), (0.0, 0.3, 0.0, 0.25)])
def test_data_wait_fraction_measures_the_time_spent_waiting_for_clips(load_seconds, step_seconds, low, high):
    from train.recipe import resolve
    from train.schedule import make_scheduler
    from train.train import make_optimizer, train_one_epoch
    from train.utils import Distributed, EpochMeter

    settings = resolve({"arch": "tsn_r18", "batch_size": 2, "epochs": 1}, "rgb")
    model = SlowModel(step_seconds)
    optimizer, _ = make_optimizer(model, settings, world_size=1)
    loader = torch.utils.data.DataLoader(SlowItems(8, load_seconds / 2), batch_size=2)
    meter = EpochMeter(torch.device("cpu"))
    train_one_epoch(model, torch.nn.CrossEntropyLoss(), optimizer, make_scheduler(optimizer, settings, len(loader)),
                    loader, torch.device("cpu"), 0, settings, torch.amp.GradScaler("cpu", enabled=False),
                    NeverStop(), meter)
    summary = meter.summary(Distributed(0, 1, 0, 1, torch.device("cpu")))
    assert low <= summary["data_wait_fraction"] <= high, summary
    assert summary["clips_per_second"] == pytest.approx(8 / meter.step_seconds, rel=0.01)


class EpochEcho(torch.utils.data.Dataset):
    epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 4

    def __getitem__(self, item):
        return self.epoch


def test_persistent_workers_see_each_epoch():
    """Persistent DataLoader workers keep their own copy of the dataset; the epoch (which seeds every random crop)
    must still reach them, or every epoch after the first would repeat the first's augmentation."""
    from train.utils import EpochAwareDataset

    dataset = EpochAwareDataset(EpochEcho())
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, persistent_workers=True)
    seen = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        seen.append(sorted(torch.cat(list(loader)).tolist()))
    assert seen == [[0] * 4, [1] * 4, [2] * 4]


def test_no_weight_decay_on_norm_layers_and_biases_as_mmaction2_tsm():
    """bn_weight_decay: false follows mmaction2's TSMOptimWrapperConstructor: BatchNorm weights and biases and the
    biases of convolutions / linear layers get weight decay 0; the head keeps its lr multipliers."""
    from train.models import build_model
    from train.recipe import resolve
    from train.train import make_optimizer

    settings = resolve({"base": "tsm_r50_kinetics400", "model_options": {"base_channels": 4},
                        "bn_weight_decay": False}, "rgb")
    model = build_model(settings["arch"], 10, num_segments=8, **settings["model_options"])
    optimizer, _ = make_optimizer(model, settings, world_size=1)
    decay = {id(p): (g["weight_decay"], g["lr_mult"]) for g in optimizer.param_groups for p in g["params"]}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert decay[id(module.weight)] == (0.0, 1.0) and decay[id(module.bias)] == (0.0, 1.0), name
        if isinstance(module, torch.nn.Conv2d):
            assert decay[id(module.weight)] == (1e-4, 1.0), name
    assert decay[id(model.fc.weight)] == (1e-4, 5) and decay[id(model.fc.bias)] == (0.0, 10)
    with_decay = resolve({"base": "tsm_r50_kinetics400", "model_options": {"base_channels": 4},
                          "bn_weight_decay": True}, "rgb")
    optimizer, _ = make_optimizer(model, with_decay, world_size=1)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert any(any(p is bn.weight for p in g["params"]) and g["weight_decay"] == 1e-4 for g in optimizer.param_groups)


def test_gpu_defaults_resolve_per_device():
    from train.utils import autocast_dtype, loader_workers, use_channels_last

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert loader_workers("auto", cuda, 8) == 7 and loader_workers("auto", cuda, 1) == 1
    assert loader_workers("auto", cpu, 8) == 2 and loader_workers(3, cuda, 8) == 3
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp16", cuda) == torch.float16
    assert use_channels_last({"layout": "segments"}, cuda) and not use_channels_last({"layout": "clip"}, cuda)
    assert not use_channels_last({"layout": "segments"}, cpu)
    assert autocast_dtype("bf16", cpu) == torch.bfloat16 and autocast_dtype("none", cuda) is None  # forced: any device
    assert use_channels_last({"layout": "clip", "channels_last": True}, cpu)
