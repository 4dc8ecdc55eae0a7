"""A recipe (model × dataset family hyperparameters) resolved for one run, and the objects it describes.

A run's settings are the recipe from config.yaml with the mode's overrides (``rgb:`` / ``flow:`` sub-dicts) merged
in; :func:`resolve` does that and fills defaults, so training and evaluation build identical models and data. A
recipe may start from a published one with ``base: <name>`` (``train/recipes/<name>.yaml``) and override keys.
"""
import copy
from pathlib import Path

import yaml

from train.data import RawframeDataset
from train.models import build_model

DEFAULTS = {
    "model_options": {},
    "num_clips": 8, "clip_len": 1, "frame_interval": 1,
    "input_size": 224, "resize_short": 256, "flip": True, "scales": [1, 0.875, 0.75, 0.66],
    "normalize": "imagenet",
    # accurate mode; efficient mode is always 1 view × centre crop of num_clips segments
    "test_views": 1, "test_crops": "center", "test_num_clips": None, "test_crop_size": None,
    "epochs": 10, "batch_size": 8, "reference_batch": None,
    "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
    "schedule": "cosine", "milestones": [], "gamma": 0.1, "warmup_epochs": 0, "grad_clip": None,
    "keep_checkpoints": 2, "amp": "none", "seed": 0, "deterministic": False, "data_workers": 2,
    # optional augmentation (off by default) and gradient accumulation (optimizer step every `accumulate` batches)
    "randaugment": None, "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "accumulate": 1,
}


RECIPES_DIR = Path(__file__).parent / "recipes"


def load_recipe(name):
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise ValueError(f"unknown recipe base {name!r} (known: {', '.join(known)})")
    recipe = yaml.safe_load(path.read_text())
    recipe.pop("source", None)  # documentation of where the values come from
    return recipe


def merged(base, override):
    """``override`` over ``base``, one level deep for the mode sub-dicts and model_options."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if key in ("rgb", "flow", "model_options") and isinstance(value, dict):
            result[key] = {**result.get(key, {}), **copy.deepcopy(value)}
        else:
            result[key] = copy.deepcopy(value)
    return result


def resolve(recipe, mode):
    """Defaults < base recipe < recipe < recipe[mode]; the result is what the results JSON records."""
    if mode not in ("rgb", "flow"):
        raise ValueError(f"mode must be rgb or flow, got {mode!r}")
    if recipe.get("base"):
        recipe = merged(load_recipe(recipe["base"]), {k: v for k, v in recipe.items() if k != "base"})
    resolved = copy.deepcopy(DEFAULTS)
    for key, value in recipe.items():
        if key not in ("rgb", "flow"):
            resolved[key] = copy.deepcopy(value)
    resolved.update(copy.deepcopy(recipe.get(mode, {})))
    resolved["mode"] = mode
    if "arch" not in resolved:
        raise ValueError("recipe has no 'arch'")
    resolved["layout"] = "clip" if resolved["arch"].startswith("i3d") else "segments"
    return resolved


def in_channels(settings):
    per_frame = 3 if settings["mode"] == "rgb" else 2
    return per_frame * settings["clip_len"] if settings["layout"] == "segments" else per_frame


def make_model(settings, num_classes):
    return build_model(settings["arch"], num_classes, in_channels=in_channels(settings),
                       num_segments=settings["num_clips"], **settings["model_options"])


def make_dataset(settings, list_path, root, test_mode, accurate=False):
    num_clips = settings["num_clips"]
    if accurate and settings["test_num_clips"]:  # TSN tests on 25 segments where it trains on 3
        num_clips = settings["test_num_clips"]
    return RawframeDataset(
        list_path, root, settings["mode"], num_clips, settings["clip_len"], settings["frame_interval"],
        layout=settings["layout"], test_mode=test_mode,
        input_size=(settings["test_crop_size"] or settings["input_size"]) if accurate else settings["input_size"],
        resize_short=settings["resize_short"], flip=settings["flip"], scales=settings["scales"],
        views=settings["test_views"] if accurate else 1, crops=settings["test_crops"] if accurate else "center",
        seed=settings["seed"], randaugment=None if test_mode else settings.get("randaugment"))
