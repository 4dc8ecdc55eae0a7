"""RandAugment on clips, MixUp / CutMix targets, gradient accumulation equals one big batch."""
import numpy as np
import pytest
import torch

from train.data import ClipWriter, TrainTransform
from train.data.augment import OPS, apply_op, cutmix_clips, mix_batch, mixed_targets, mixup_clips, rand_augment
from tests.test_training import NeverStop
from train.predict import DecodedFrames


def clip(frames=4, size=24, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, size, size, 3), dtype=np.uint8)
    # frames differ (a moving offset) so "same op on every frame" is not trivially true
    return np.concatenate([np.roll(base, t, axis=2) for t in range(frames)])


def test_randaugment_is_deterministic_per_seed():
    frames = clip()
    a = rand_augment(frames, np.random.default_rng([1, 2, 3]), num_ops=2, magnitude=9)
    b = rand_augment(frames, np.random.default_rng([1, 2, 3]), num_ops=2, magnitude=9)
    assert a.dtype == np.uint8 and a.shape == frames.shape and np.array_equal(a, b)
    outputs = {rand_augment(frames, np.random.default_rng(s), 2, 9).tobytes() for s in range(8)}
    assert len(outputs) > 1


@pytest.mark.parametrize("op", OPS)
def test_every_op_is_the_same_on_every_frame(op):
    # the same image in every frame must come out as the same image in every frame
    frames = np.repeat(clip(1)[:1], 3, axis=0)
    out = apply_op(frames, op, 9, sign=-1)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    if op not in ("equalize", "autocontrast"):  # these may be no-ops on an already full-range image
        assert not np.array_equal(out, frames), op
    # on a clip with different frames, an op equals applying it to each frame alone (per-pixel / per-frame ops)
    if op not in ("contrast", "equalize", "autocontrast"):  # these use clip-wide statistics by design
        moving = clip(3)
        together = apply_op(moving, op, 7, sign=1)
        for t in range(3):
            assert np.array_equal(together[t], apply_op(moving[t:t + 1], op, 7, sign=1)[0])


def test_randaugment_in_train_transform_and_flow_is_refused():
    frames = DecodedFrames("clip", clip(4, 40), "rgb")
    numbers = np.array([[[1], [2], [3], [4]]])
    transform = TrainTransform(ClipWriter(3, 32), resize_short=40, randaugment={"num_ops": 2, "magnitude": 9})
    a = transform(frames, numbers, np.random.default_rng(5))
    b = transform(frames, numbers, np.random.default_rng(5))
    plain = TrainTransform(ClipWriter(3, 32), resize_short=40)(frames, numbers, np.random.default_rng(5))
    assert a.shape == (3, 4, 32, 32) and torch.equal(a, b) and not torch.equal(a, plain)
    with pytest.raises(ValueError, match="rgb"):
        TrainTransform(ClipWriter(2, 32, is_flow=True), randaugment={"num_ops": 1})


@pytest.mark.parametrize("mixup_alpha, cutmix_alpha", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixed_targets_sum_to_one(mixup_alpha, cutmix_alpha):
    clips = torch.rand(6, 3, 4, 16, 16)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    for step in range(5):
        mixed, targets = mix_batch(clips, labels, 5, mixup_alpha, cutmix_alpha, np.random.default_rng(step))
        assert mixed.shape == clips.shape and targets.shape == (6, 5)
        assert torch.allclose(targets.sum(1), torch.ones(6))
        assert (targets >= 0).all()
    assert mix_batch(clips, labels, 5, 0.0, 0.0, np.random.default_rng(0)) is None


def test_mixup_and_cutmix_weights_match_the_pixels():
    a, b = torch.zeros(1, 3, 2, 8, 8), torch.ones(1, 3, 2, 8, 8)
    clips, labels = torch.cat([a, b]), torch.tensor([0, 1])
    mixed, perm, lam = mixup_clips(clips, 0.4, np.random.default_rng(1))
    targets = mixed_targets(labels, perm, lam, 2)
    # each clip's mean pixel equals its target's weight on class 1 (clip 1 is all ones)
    assert torch.allclose(mixed.mean(dim=(1, 2, 3, 4)), targets[:, 1], atol=1e-6)
    for seed in range(5):
        mixed, perm, lam = cutmix_clips(clips, 1.0, np.random.default_rng(seed))
        targets = mixed_targets(labels, perm, lam, 2)
        assert torch.allclose(mixed.mean(dim=(1, 2, 3, 4)), targets[:, 1], atol=1e-6)
        # the box is the same on every frame
        assert torch.equal(mixed[:, :, 0], mixed[:, :, 1])


def one_epoch(batch_size, accumulate, clips, labels):
    from train.recipe import make_model, resolve
    from train.schedule import make_scheduler
    from train.train import make_optimizer, train_one_epoch
    from train.utils import EpochMeter

    settings = resolve({"arch": "tsn_r18", "model_options": {"base_channels": 4, "dropout": 0.0}, "num_clips": 2,
                        "input_size": 32, "batch_size": batch_size, "accumulate": accumulate, "lr": 0.05,
                        "reference_batch": 4, "norm_eval": True, "schedule": "cosine", "epochs": 2,
                        "weight_decay": 1e-3, "deterministic": True}, "rgb")
    torch.manual_seed(0)
    model = make_model(settings, 3)
    optimizer, base_lr = make_optimizer(model, settings, world_size=1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(clips, labels, torch.arange(len(labels))),
                                         batch_size=batch_size, shuffle=False)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    scheduler = make_scheduler(optimizer, settings, -(-len(loader) // accumulate))
    meter = EpochMeter(torch.device("cpu"))
    finished = train_one_epoch(model, torch.nn.CrossEntropyLoss(), optimizer, scheduler, loader, torch.device("cpu"),
                               0, settings, scaler, NeverStop(), meter)
    assert finished and meter.seen == len(labels)
    return model.state_dict(), base_lr


def test_accumulation_equals_one_big_batch():
    generator = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (8, 3, 2, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    big, lr_big = one_epoch(4, 1, clips, labels)
    small, lr_small = one_epoch(2, 2, clips, labels)
    assert lr_big == pytest.approx(lr_small)  # linear scaling counts the accumulation
    for key in big:
        if big[key].is_floating_point():
            assert torch.allclose(big[key], small[key], atol=1e-5), key


@pytest.mark.slow
def test_resume_is_exact_with_accumulation_mixing_and_randaugment(synthetic_small, tmp_path):
    import signal

    from tests.test_training import (SETTINGS, assert_same_weights, final_weights, interrupt, run_to_end,
                                     train_command, write_lists)

    settings = {**SETTINGS, "accumulate": 2, "mixup_alpha": 0.8, "cutmix_alpha": 1.0,
                "randaugment": {"num_ops": 2, "magnitude": 9}}
    lists = write_lists(synthetic_small, tmp_path / "lists")
    root = synthetic_small["root"] / "rawframes"
    run_to_end(train_command(lists, root, tmp_path / "reference", settings))
    command = train_command(lists, root, tmp_path / "run", settings)
    code, out, err = interrupt(command, signal.SIGTERM, after_lines=1)
    assert code == 0 and "stopped by signal" in out, err[-2000:]
    assert "resuming from" in run_to_end(command).stdout
    assert_same_weights(final_weights(tmp_path / "run"), final_weights(tmp_path / "reference"))
