"""Learning-rate schedules of the recipes, as a LambdaLR stepped once per optimizer step.

The factor multiplies every parameter group's starting lr (which already holds the linear batch scaling and the
group's multiplier), so head multipliers keep their ratio through the schedule. ``settings["schedule"]``:

- ``constant``;
- ``multistep``: ×``gamma`` at each of ``milestones`` (epochs), as mmcv's ``step`` policy / mmengine MultiStepLR;
- ``step``: ×``gamma`` every ``step_epochs`` epochs;
- ``cosine``: half a cosine from 1 to 0 over ``epochs``;
- ``mindspore_step``: MindSpore I3D's halving every ``step_epochs`` epochs with a floor and one restart (below).

``warmup_epochs`` > 0 scales the first epochs as mmcv's linear warm-up (mmcv/runner/hooks/lr_updater.py,
``get_warmup_lr``): factor × (1 − (1 − progress / warmup) × (1 − ``warmup_ratio``)).
"""
import math

from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "multistep", "step", "cosine", "mindspore_step")


def mindspore_step_factor(settings, boundaries):
    """The lr factor after ``boundaries`` decay points of MindSpore I3D's ``learning_rate_function``.

    mindspore-ai/models research/cv/I3D/train.py l.119-134, called after every step with the optimizer's lr; at each
    multiple of ``lr_de_steps`` (= ``step_epochs`` epochs):

    - rgb (l.131-132): halve while lr > 1e-5, so it stops at the first value <= 1e-5;
    - flow (l.122-129): halve while lr > 5e-5; the first time lr <= 5e-5 it goes back to 0.001 and sets has_back,
      and the same call then halves twice (l.126 and l.128 both see lr > 5e-5), so the restart lands on lr / 4.

    ``lr_floor`` is that threshold at the recipe's ``lr`` (1e-5 / 5e-5 at lr 0.001; it scales with the batch like the
    lr), ``lr_restarts`` 0 (rgb) or 1 (flow); the restart value is the starting lr (train.py's 0.001 is its lr).
    """
    floor = settings["lr_floor"] / settings["lr"] if settings.get("lr_floor") is not None else 0.0
    gamma = settings["gamma"]
    restarts_left = settings.get("lr_restarts", 0)
    restarted = False
    factor = 1.0
    for _ in range(boundaries):
        if not restarted:
            if restarts_left and factor <= floor:
                factor, restarted, restarts_left = 1.0, True, restarts_left - 1
            if factor > floor:
                factor *= gamma
        if restarted and factor > floor:
            factor *= gamma
    return factor


def lr_factor(settings, step, steps_per_epoch):
    """The factor on the starting lr for optimizer step ``step`` (0-based: ``step`` steps are done)."""
    progress = step / steps_per_epoch  # epochs done, fractional
    schedule = settings["schedule"]
    if schedule == "constant":
        factor = 1.0
    elif schedule == "multistep":
        factor = settings["gamma"] ** sum(progress >= m for m in settings["milestones"])
    elif schedule == "step":
        factor = settings["gamma"] ** int(progress // settings["step_epochs"])
    elif schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(1.0, progress / settings["epochs"])))
    elif schedule == "mindspore_step":
        factor = mindspore_step_factor(settings, step // (settings["step_epochs"] * steps_per_epoch))
    else:
        raise ValueError(f"unknown schedule {schedule!r} ({', '.join(SCHEDULES)})")
    warmup = settings.get("warmup_epochs") or 0
    if progress < warmup:
        factor *= 1 - (1 - progress / warmup) * (1 - settings.get("warmup_ratio", 0.1))
    return factor


def make_scheduler(optimizer, settings, steps_per_epoch):
    """A LambdaLR over ``optimizer`` for the recipe's schedule; call ``.step()`` after every optimizer step."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if settings["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {settings['schedule']!r} ({', '.join(SCHEDULES)})")
    if settings["schedule"] in ("step", "mindspore_step") and not settings.get("step_epochs"):
        raise ValueError(f"schedule {settings['schedule']} needs step_epochs")
    return LambdaLR(optimizer, lambda step: lr_factor(settings, step, steps_per_epoch))
