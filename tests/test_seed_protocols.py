"""The seeds' test protocols, batch and GPU settings, checked against the upstream pipelines.

Sampled frame positions and crop boxes are derived here from mmaction2's pipeline definitions for the settings each
seed row's config names (SampleFrames / DenseSampleFrames test clips: mmaction2 v0.24.1
mmaction/datasets/pipelines/loading.py, ``_get_test_clips``; ThreeCrop: augmentations.py, left / right / middle of
the long side), not from our code; tests/peers runs mmaction2's own transforms on our lists.
"""
import numpy as np
import pytest
import torch

from train.data.transforms import eval_crop_boxes, resized_shape
from train.models import build_model, list_archs
from train.presets import eval_protocol, eval_sampler
from train.recipe import load_config, settings_for
from train.train import batch_plan
from train.utils import fit_loader_memory, to_channels_last

CONFIG = load_config()
RESNET50_V1 = "https://download.pytorch.org/models/resnet50-0676ba61.pth"


def seed(model, dataset="kinetics400", mode="rgb"):
    return settings_for(CONFIG, model, dataset, mode)


def positions(settings, accurate, num_frames):
    """1-based frame numbers (views, clips, clip_len) of a test mode."""
    return eval_sampler(settings, accurate)(num_frames)


def dense_test_starts(num_frames, positions=10, sample_range=64):
    """DenseSampleFrames(test_mode=True): num_sample_positions starts on linspace(0, max(1, 1 + N − 64) − 1)."""
    return np.linspace(0, max(1, 1 + num_frames - sample_range) - 1, num=positions, dtype=int)


def test_tsn_1x1x8_is_the_v1_row_with_25_segments_three_crops_256():
    settings = seed("tsn-1x1x8")
    assert settings["pretrained"]["url"] == RESNET50_V1  # torchvision://resnet50, not V2's resnet50-11ad3fa6
    accurate = eval_protocol(settings, True)
    assert (accurate["num_clips"], accurate["views"], accurate["crops"], accurate["crop_size"]) == (25, 1, "three", 256)
    frames = positions(settings, True, 250)  # SampleFrames(1, 1, 25, test_mode): int(k · 10 + 5), 0-based
    assert frames.shape == (1, 25, 1) and frames[0, :, 0].tolist() == [k * 10 + 5 + 1 for k in range(25)]
    height, width = resized_shape(256, 340, settings["resize_short"])  # a 340x256 frame stays 340x256
    boxes = eval_crop_boxes(height, width, accurate["crop_size"], accurate["crops"])
    assert [(top, left, h, w) for top, left, h, w, _ in boxes] == [(0, 0, 256, 256), (0, 84, 256, 256),
                                                                   (0, 42, 256, 256)]
    efficient = eval_protocol(settings, False)
    assert (efficient["num_clips"], efficient["crops"], efficient["crop_size"]) == (8, "center", 224)


def test_tsm_accurate_mode_is_twice_sample_three_crops_256():
    settings = seed("tsm")
    accurate, efficient = eval_protocol(settings, True), eval_protocol(settings, False)
    assert accurate != efficient
    assert (accurate["twice_sample"], accurate["crops"], accurate["crop_size"], accurate["clips_per_video"]) == \
        (True, "three", 256, 6)
    frames = positions(settings, True, 250)  # centres int(k · 31.25 + 15.625), then the starts int(k · 31.25)
    assert frames[0, :, 0].tolist() == [int(k * 31.25 + 15.625) + 1 for k in range(8)]
    assert frames[1, :, 0].tolist() == [int(k * 31.25) + 1 for k in range(8)]
    assert (efficient["views"], efficient["crops"], efficient["crop_size"]) == (1, "center", 224)
    assert positions(settings, False, 250)[0, :, 0].tolist() == frames[0, :, 0].tolist()


@pytest.mark.parametrize("model, clip_len, interval, num_clips", [("tsm-mobilenet-v2", 1, 1, 8),
                                                                  ("i3d-dense", 32, 2, 1)])
def test_dense_rows_test_ten_positions_in_both_modes(model, clip_len, interval, num_clips):
    settings = seed(model)
    for accurate, crops, size in ((False, "center", 224), (True, "three", 256)):
        protocol = eval_protocol(settings, accurate)
        assert (protocol["sampling"], protocol["views"], protocol["crops"], protocol["crop_size"]) == \
            ("dense", 10, crops, size)
        for num_frames in (300, 40):
            frames = positions(settings, accurate, num_frames)
            base = np.arange(num_clips) * (64 // num_clips)
            expected = [[(((base[c] + start) % num_frames + np.arange(clip_len) * interval) % num_frames + 1).tolist()
                         for c in range(num_clips)] for start in dense_test_starts(num_frames)]
            assert frames.tolist() == expected


def test_mindspore_i3d_head_max_pools():
    settings = seed("i3d", "ucf101")
    assert settings["model_options"]["head_pool"] == "max"
    torch.manual_seed(0)
    model = build_model("i3d_inception", 5, base_channels=8, head_pool="max").eval()
    clip = torch.randn(2, 3, 16, 64, 64)
    with torch.no_grad():
        features = model.extract_features(clip)
        expected = model.logits(features.amax(dim=(2, 3, 4), keepdim=True)).flatten(1)
        assert torch.allclose(model(clip), expected)
        model.head_pool = "avg"
        assert not torch.allclose(model(clip), expected)
    with pytest.raises(ValueError, match="head_pool"):
        build_model("i3d_inception", 5, head_pool="sum")


@pytest.mark.parametrize("model, dataset, processes, accumulate, total, lr", [
    ("i3d", "ucf101", 1, 8, 64, 0.001),        # MindSpore I3D: 8 per device × 8 devices
    ("i3d", "ucf101", 8, 1, 64, 0.001),
    ("tsm", "kinetics400", 2, 4, 128, 0.02),
    ("tsn-1x1x8", "kinetics400", 1, 8, 96, 0.00375),
    ("tsm", "kinetics400", 3, 3, 144, 0.02 * 144 / 128),  # what rounding leaves scales the lr
])
def test_one_gpu_reaches_the_seed_total_batch_by_accumulation(model, dataset, processes, accumulate, total, lr):
    plan = batch_plan(seed(model, dataset), processes)
    assert (plan["batch_policy"], plan["accumulate"], plan["total_batch"]) == ("accumulate", accumulate, total)
    assert plan["effective_lr"] == pytest.approx(lr)


def test_scale_lr_and_explicit_accumulate():
    settings = seed("i3d", "ucf101")
    plan = batch_plan({**settings, "batch_policy": "scale_lr"}, 1)
    assert (plan["accumulate"], plan["total_batch"]) == (1, 8) and plan["effective_lr"] == pytest.approx(0.001 / 8)
    plan = batch_plan({**settings, "accumulate": 2}, 1)
    assert (plan["accumulate"], plan["total_batch"]) == (2, 16) and plan["effective_lr"] == pytest.approx(0.00025)
    assert batch_plan(seed("tsn", "synthetic"), 1)["accumulate"] == 1  # no reference batch: as given
    with pytest.raises(ValueError, match="batch_policy"):
        batch_plan({**settings, "batch_policy": "double"}, 1)


def test_loader_memory_budget():
    gb = 2 ** 30
    assert fit_loader_memory(gb // 4, 4, 4, setting=4) == (4, 4)
    assert fit_loader_memory(gb, 4, 4, setting=3) == (3, 1)  # prefetch first, then workers
    assert fit_loader_memory(gb, 0, 2, setting=0.5) == (0, 2)  # no workers: nothing prefetched
    with pytest.raises(Exception, match=r"validation loader: one batch is 1\.00 GB, over the loader memory budget "
                                        r"of 0\.50 GB \(loader_memory_gb: 0\.5\)"):
        fit_loader_memory(gb, 2, 2, setting=0.5, what="validation loader")


def test_jobs_without_gpus_see_none():
    from train.launch import build_parser, plan

    def environment(*options):
        args = build_parser().parse_args(list(options))
        args.command = ["-m", "train.train"]
        return plan(args, {"CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/usr/bin"})[1]

    assert environment("--gpus", "0")["CUDA_VISIBLE_DEVICES"] == ""
    assert environment()["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize("arch", list_archs())
def test_gpu_settings_train_and_evaluate_every_arch_on_the_cpu(arch, synthetic_small, tmp_path):
    """channels_last (5-D weights too), AMP forced (bf16: the CPU's autocast), workers with GPU prefetch and pinning:
    one training step and one evaluation of each architecture the registry builds."""
    from tests.test_training import write_lists
    from train.evaluate import score_dataset
    from train.presets import make_dataset
    from train.recipe import resolve
    from train.schedule import make_scheduler
    from train.train import make_loader, make_optimizer, train_one_epoch
    from train.utils import Distributed, EpochMeter, StopRequested

    clip = arch.startswith("i3d")
    settings = resolve({"arch": arch, "model_options": {"base_channels": 4}, "num_clips": 1 if clip else 2,
                        "clip_len": 8 if clip else 1, "input_size": 32, "resize_short": 40, "batch_size": 4,
                        "epochs": 1, "lr": 0.01, "grad_clip": 40, "schedule": "constant", "channels_last": True, "amp": "bf16",
                        "data_workers": 2, "test_crops": "three", "eval_batch": 6}, "rgb")
    lists = write_lists(synthetic_small, tmp_path)
    root = synthetic_small["root"] / "rawframes"
    context = Distributed(rank=0, world_size=1, local_rank=0, local_world_size=1, device=torch.device("cpu"))
    model = to_channels_last(build_model(arch, len(synthetic_small["classes"]), **settings["model_options"]))
    for tensor in model.parameters():
        if tensor.dim() in (4, 5):
            assert tensor.is_contiguous(memory_format=torch.channels_last if tensor.dim() == 4
                                        else torch.channels_last_3d)
    train_set = make_dataset(settings, lists / "train.txt", root, test_mode=False)
    loader = make_loader(train_set, settings, context, True, 4, 2, drop_last=True, persistent=False, gpu=True)
    assert (loader.num_workers, loader.prefetch_factor, loader.pin_memory) == (2, 4, True)
    optimizer, _ = make_optimizer(model, settings, 1)
    scheduler = make_scheduler(optimizer, settings, len(loader))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    before = [p.detach().clone() for p in model.parameters()]
    assert train_one_epoch(model, torch.nn.CrossEntropyLoss(), optimizer, scheduler, loader, context.device, 0,
                           settings, scaler, StopRequested(1, context.device), EpochMeter(context.device))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    test_set = make_dataset(settings, lists / "train.txt", root, test_mode=True, accurate=True)
    scores = score_dataset(model, test_set, settings, len(synthetic_small["classes"]), context.device, 6, workers=2,
                           accurate=True)
    assert scores.shape == (len(test_set), len(synthetic_small["classes"])) and torch.isfinite(scores).all()
    if arch == "tsn_r18":  # evaluation honours the recipe's AMP (it was silently fp32 before)
        full = score_dataset(model, test_set, {**settings, "amp": "none"}, len(synthetic_small["classes"]),
                             context.device, 6, accurate=True)
        assert not torch.equal(full, scores) and torch.allclose(full, scores, atol=0.1)


def test_published_table_covers_the_seed_rows_and_results_carry_the_difference(tmp_path):
    from train.evaluate import result_record
    from train.published import MARGIN, published_rows
    from train.report import reproduction_table

    rows = published_rows()
    keys = {(r["model"], r["dataset"], r["mode"]) for r in rows}
    assert {("tsm", "kinetics400", "rgb"), ("tsn-1x1x8", "kinetics400", "rgb"), ("i3d", "ucf101", "joint"),
            ("i3d-dense", "kinetics400", "rgb"), ("i3d", "hmdb51", "flow")} <= keys
    for row in rows:  # every row says where it is published, and its model resolves to a recipe here
        assert row["source"] and float(row["top1"]) > 0 and row["test_mode"] in ("efficient", "accurate")
        settings_for(CONFIG, row["model"], row["dataset"], row["mode"])
    scores = {"top1": 0.70, "top5": 0.9, "mean_class_accuracy": 0.7, "per_class_accuracy": [0.7],
              "confusion_matrix": [[1]]}
    settings = seed("tsm")
    record = result_record("tsm", "kinetics400", "rgb", ["a"], scores, {**scores, "top1": 0.5}, {
        "config": settings, "protocol": {"total_batch": 32, "batch_policy": "scale_lr", "checkpoint": {"epoch": 10},
                                         "test": {"efficient": eval_protocol(settings, False)}}})
    by_seed = {p["seed"]: p for p in record["published"]}
    assert set(by_seed) == {"000", "001"}  # PaddleVideo and mmaction2 publish this row
    assert by_seed["001"]["difference_top1"] == pytest.approx(70.0 - 70.59) and not by_seed["001"]["flagged"]
    assert by_seed["000"]["difference_top1"] == pytest.approx(70.0 - 71.06) and by_seed["000"]["flagged"]
    assert abs(by_seed["000"]["difference_top1"]) > MARGIN
    assert by_seed["000"]["protocol_differences"] == [
        "weights: ours resnet50-0676ba61.pth, published ResNet50_pretrain.pdparams (PaddleVideo)",
        "batch: ours 32 (scale_lr), published 128", "epochs: ours 10, published 50"]
    path = tmp_path / "tsm.json"
    path.write_text(__import__("json").dumps(record))
    table = reproduction_table([path])
    assert len(table) == len(rows)
    ran = table[table["top1"].notna()]
    assert ran["seed"].tolist() == ["000", "001"] and ran["flagged"].tolist() == [True, False]


def test_processes_share_the_gpus_when_there_are_fewer():
    from train.utils import device_and_backend

    assert device_and_backend(1, 2, 2) == (torch.device("cuda", 1), "nccl")
    assert device_and_backend(1, 2, 1) == (torch.device("cuda", 0), "gloo")  # NCCL refuses two ranks on one GPU
    assert device_and_backend(3, 4, 2) == (torch.device("cuda", 1), "gloo")
    assert device_and_backend(0, 2, 0) == (torch.device("cpu"), "gloo")


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu():
    """tests/gpu/check_gpu.py --on-cpu: the GPU check's own code (two processes, guard, resume, evaluation)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    result = subprocess.run([sys.executable, str(REPO / "tests" / "gpu" / "check_gpu.py"), "--on-cpu", "--recipes",
                             "tsm_r50_kinetics400", "--only", "train", "resume", "diverge", "evaluate"],
                            capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "check_gpu: 4/4 passed" in result.stdout  # tvl1 on the CPU: tests/test_tvl1_torch.py


def test_the_gpu_check_imports_only_what_a_bare_gpu_machine_has():
    """tests/gpu/check_gpu.py and what it runs (train.launch, train.train, train.evaluate, the collective guard)
    import only torch, torchvision, triton, numpy, pandas, pyarrow, pyyaml, tqdm and OpenCV at module level: no
    PyAV, no Snakemake, no pytest (anything else is imported where it is used)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    probe = """
import importlib, sys
allowed = {"torch", "torchvision", "triton", "numpy", "pandas", "pyarrow", "yaml", "tqdm", "cv2", "prep", "train",
           "tests", "check_gpu"}
before = set(sys.modules)
sys.path.insert(0, "tests/gpu")
for name in ("check_gpu", "train.launch", "train.train", "train.evaluate", "tests.collective_guard"):
    importlib.import_module(name)
third_party = {m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)
# what the allowed packages pull in themselves is theirs (torch: sympy, jinja2, ...; pandas: dateutil, pytz, ...)
ours = [n for n in third_party - allowed if n in ("av", "snakemake", "pytest", "jsonschema", "rarfile", "decord",
                                                     "matplotlib", "imageio_ffmpeg", "requests", "onnx")]
print(sorted(ours))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout
