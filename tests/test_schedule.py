"""train/schedule.py: every recipe's schedule as a LambdaLR stepped per optimizer step, checked on a real optimizer."""
import pytest
import torch

from train.recipe import load_config, resolve, settings_for
from train.schedule import make_scheduler

# MindSpore I3D (mindspore-ai/models research/cv/I3D/train.py l.119-134, lr 0.001, lr_de_rate 0.5, lr_de_epochs 4),
# the lr after each 4-epoch boundary, traced by hand from its learning_rate_function:
# rgb halves while lr > 1e-5: ... 1.5625e-5 -> 7.8125e-6, then stays.
RGB_LR = [1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5, 1.5625e-5, 7.8125e-6, 7.8125e-6, 7.8125e-6]
# flow halves while lr > 5e-5; at 3.125e-5 (epoch 24) it goes back to 0.001 and the same call halves twice
# (l.126 and l.128), then halving resumes down to 3.125e-5, where it stays until epoch 60.
FLOW_LR = [1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5,
           3.125e-5, 3.125e-5, 3.125e-5, 3.125e-5, 3.125e-5]


def lrs_per_epoch(settings, steps_per_epoch, base_lr, epochs, head_mult=None):
    """The lr of the optimizer's groups during the first step of every epoch, stepping the scheduler per step."""
    body = torch.nn.Parameter(torch.zeros(2))
    groups = [{"params": [body], "lr": base_lr}]
    if head_mult:
        groups.append({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": base_lr * head_mult})
    optimizer = torch.optim.SGD(groups, lr=base_lr)
    scheduler = make_scheduler(optimizer, settings, steps_per_epoch)
    seen = []
    for step in range(epochs * steps_per_epoch):
        if step % steps_per_epoch == 0:
            seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51"])
@pytest.mark.parametrize("mode, expected", [("rgb", RGB_LR), ("flow", FLOW_LR)])
def test_mindspore_i3d_halving_with_floors(dataset, mode, expected):
    settings = settings_for(load_config(), "i3d", dataset, mode)
    assert settings["epochs"] == 4 * len(expected)  # rgb 40, flow 60 epochs
    seen = lrs_per_epoch(settings, steps_per_epoch=3, base_lr=settings["lr"], epochs=settings["epochs"])
    per_boundary = [seen[4 * b][0] for b in range(len(expected))]
    assert per_boundary == pytest.approx(expected, rel=1e-9)
    # constant between boundaries
    assert all(seen[e][0] == pytest.approx(seen[4 * (e // 4)][0]) for e in range(settings["epochs"]))


def test_mindspore_floors_scale_with_the_batch():
    """At half the reference batch the lr is halved and the floors with it: the same factors, the same restart."""
    settings = settings_for(load_config(), "i3d", "ucf101", "flow")
    seen = lrs_per_epoch(settings, steps_per_epoch=2, base_lr=settings["lr"] / 2, epochs=60)
    assert [seen[4 * b][0] for b in range(15)] == pytest.approx([lr / 2 for lr in FLOW_LR], rel=1e-9)


def test_multistep_changes_at_the_first_step_of_the_milestone_epoch():
    # mmaction2 tsn_r50_1x1x3_100e: lr_config policy='step', step=[40, 80] (mmcv: by epoch, at the epoch's start)
    settings = settings_for(load_config(), "tsn", "kinetics400", "rgb")
    steps = 5
    seen = lrs_per_epoch(settings, steps, 0.01, 100)
    assert [seen[e][0] for e in (0, 39, 40, 79, 80, 99)] == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])
    body = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([body], lr=0.01)
    scheduler = make_scheduler(optimizer, settings, steps)
    for _ in range(40 * steps - 1):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # the last step of epoch 39
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_group_multipliers_keep_their_ratio():
    settings = settings_for(load_config(), "tsm", "kinetics400", "rgb")  # fc weight lr x5
    for body, head in lrs_per_epoch(settings, 2, 0.02, 50, head_mult=5):
        assert head == pytest.approx(5 * body)


def test_step_cosine_constant_and_linear_warmup():
    base = resolve({"arch": "tsn_r18"}, "rgb")
    step = {**base, "schedule": "step", "step_epochs": 3, "gamma": 0.5, "epochs": 9}
    assert [lrs[0] for lrs in lrs_per_epoch(step, 4, 1.0, 9)] == pytest.approx([1, 1, 1, .5, .5, .5, .25, .25, .25])
    cosine = {**base, "schedule": "cosine", "epochs": 4}
    assert [lrs[0] for lrs in lrs_per_epoch(cosine, 1, 1.0, 4)] == pytest.approx([1, 0.853553, 0.5, 0.146447], 1e-5)
    constant = {**base, "schedule": "constant", "epochs": 3}
    assert [lrs[0] for lrs in lrs_per_epoch(constant, 2, 0.3, 3)] == pytest.approx([0.3] * 3)
    # mmcv linear warm-up: lr × (1 − (1 − progress / warmup) × (1 − warmup_ratio)), on top of the schedule
    warm = {**constant, "warmup_epochs": 2, "warmup_ratio": 0.1}
    body = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([body], lr=1.0)
    scheduler = make_scheduler(optimizer, warm, 4)
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(0.1) and seen[4] == pytest.approx(0.55) and seen[8:] == pytest.approx([1.0] * 4)
    assert seen == sorted(seen)


def test_resume_continues_the_same_sequence():
    settings = settings_for(load_config(), "i3d", "ucf101", "flow")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler = make_scheduler(optimizer, settings, 2)
    for _ in range(40):  # epoch 20: the saved state is before the restart at epoch 24 (step 48)
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict(), optimizer.state_dict()
    expected = []
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        expected.append(optimizer.param_groups[0]["lr"])
    resumed_optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    resumed_optimizer.load_state_dict(state[1])
    resumed = make_scheduler(resumed_optimizer, settings, 2)
    resumed.load_state_dict(state[0])
    got = []
    for _ in range(20):
        resumed_optimizer.step()
        resumed.step()
        got.append(resumed_optimizer.param_groups[0]["lr"])
    assert got == pytest.approx(expected)
    # steps 41..60: the restart at step 48 (epoch 24), the next halving at step 56
    assert got[6:8] == pytest.approx([3.125e-5, 2.5e-4]) and got[-1] == pytest.approx(1.25e-4)


@pytest.mark.parametrize("change, message", [
    ({"schedule": "poly"}, "unknown schedule 'poly'"),
    ({"schedule": "step", "step_epochs": None}, "needs step_epochs"),
])
def test_bad_schedule_settings(change, message):
    settings = {**resolve({"arch": "tsn_r18"}, "rgb"), **change}
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=message):
        make_scheduler(optimizer, settings, 10)
