"""Recipes: which published recipe a (model, dataset) runs, and the settings a run resolves to.

``config.yaml`` maps each model to a recipe per dataset (``recipes.<model>.<dataset>``, normally ``{base: <name>}``
naming ``train/recipes/<name>.yaml``, plus keys that override it); keys directly under ``recipes.<model>`` apply to
every dataset. A recipe file may itself start from another with ``base:``. A run's settings are the defaults, then the
recipe, then its mode's sub-dict (``rgb:`` / ``flow:``); :func:`resolve` does that, so training and evaluation build
identical models and data, and ``python -m train.recipe MODEL DATASET MODE`` prints exactly what a target will run.
"""
import copy
import functools
import json
import math
import sys
from pathlib import Path

from prep.base import arguments
from prep.base.config import ConfigError, load_yaml

DEFAULTS = {
    "recipe": None, "pretrained": None, "model_options": {},
    "num_clips": 8, "clip_len": 1, "frame_interval": 1,
    # sampling: uniform (mmaction2 SampleFrames), dense (DenseSampleFrames), temporal_crop (3D-ResNets /
    # MindSpore-I3D TemporalRandomCrop / TemporalCenterCrop with loop padding); test_sampling None = sampling
    "sampling": "uniform", "test_sampling": None, "test_clip_len": None, "twice_sample": False,
    "input_size": 224, "resize_short": 256, "flip": True,
    # train_crop: multiscale (mmaction2 MultiScaleCrop), random_resized (RandomResizedCrop), random (RandomCrop)
    "train_crop": "multiscale", "scales": [1, 0.875, 0.75, 0.66], "max_wh_scale_gap": 1, "num_fixed_crops": 5,
    "normalize": "imagenet",
    # accurate mode; efficient mode is always 1 view × centre crop of num_clips segments
    "test_views": 1, "test_crops": "center", "test_num_clips": None, "test_crop_size": None,
    "average_clips": "prob", "eval_batch": 8, "eval_checkpoint": "final",
    "fusion": None,  # None: config.yaml's `fusion:` weights
    "epochs": 10, "batch_size": 8, "reference_batch": None,
    "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "bn_weight_decay": True,
    "schedule": "cosine", "milestones": [], "gamma": 0.1, "step_epochs": None, "lr_floor": None, "lr_restarts": 0,
    "warmup_epochs": 0, "warmup_ratio": 0.1, "grad_clip": None,
    "keep_checkpoints": 2, "seed": 0, "deterministic": False,
    # speed on a GPU (train/train.py): bf16/fp16 AMP, workers from the CPUs granted, NHWC for 2D models; CPU: off
    "amp": "auto", "data_workers": "auto", "channels_last": "auto", "compile": False,
    # optional augmentation (off by default) and gradient accumulation (optimizer step every `accumulate` batches)
    "randaugment": None, "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "accumulate": None,
    # fewer processes than the reference run: reach reference_batch by accumulation (lr as published) or scale_lr
    "batch_policy": "accumulate",
    # prefetched batches one DataLoader may hold (batch bytes × prefetch × workers); auto = half of /dev/shm
    "loader_memory_gb": "auto",
}

REPO = Path(__file__).resolve().parents[1]
RECIPES_DIR = Path(__file__).parent / "recipes"
MODES = ("rgb", "flow")


@functools.cache
def recipe_keys():
    """The keys a recipe may set (the config schema's ``$defs.recipe``); any other key under ``recipes.<model>``
    names a dataset (the schema allows only the registry's, prep.datasets, which train may not import)."""
    schema = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml", "schema")
    return frozenset(schema["$defs"]["recipe"]["properties"])


class RecipeError(ValueError):
    """A recipe that cannot be resolved; the message is one line naming the recipe or key."""


def known_recipes():
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name, _chain=()):
    """``train/recipes/<name>.yaml`` with its own ``base:`` chain merged in (``source:`` is documentation)."""
    if name in _chain:
        raise RecipeError(f"recipe base cycle: {' -> '.join((*_chain, name))}")
    path = RECIPES_DIR / f"{name}.yaml"
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        raise RecipeError(f"unknown recipe base {name!r} (known: {', '.join(known_recipes())})")
    recipe = load_yaml(path, "recipe")
    recipe.pop("source", None)
    base = recipe.pop("base", None)
    return merged(load_recipe(base, (*_chain, name)), recipe) if base else recipe


def merged(base, override):
    """``override`` over ``base``, one level deep for the mode sub-dicts and model_options; any other value (e.g.
    ``pretrained``) is replaced whole, so no key of a base's value leaks into an override's."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if key in ("rgb", "flow", "model_options") and isinstance(value, dict):
            result[key] = {**(result.get(key) or {}), **copy.deepcopy(value)}
        else:
            result[key] = copy.deepcopy(value)
    return result


def recipe_for(recipes, model, dataset):
    """The recipe of ``model`` on ``dataset`` from config ``recipes``: its ``<dataset>`` entry, then the keys directly
    under ``recipes.<model>`` (which apply to every dataset)."""
    if model not in recipes:
        raise RecipeError(f"config: model {model!r} has no entry under 'recipes' (known: {', '.join(sorted(recipes))})")
    entry = recipes[model] or {}
    model_wide = {k: v for k, v in entry.items() if k in recipe_keys()}
    if entry.get(dataset) is None and not model_wide:
        raise RecipeError(f"config: no recipe for model {model!r} on dataset {dataset!r} (recipes.{model}.{dataset})")
    recipe = merged(entry.get(dataset) or {}, model_wide)
    if not recipe.get("base") and "arch" not in recipe:
        raise RecipeError(f"config: recipes.{model}.{dataset} has neither 'base' nor 'arch'")
    return recipe


def resolve(recipe, mode):
    """Defaults < base recipe < recipe < recipe[mode]; the result is what the results JSON records."""
    if mode not in MODES:
        raise RecipeError(f"mode must be rgb or flow, got {mode!r}")
    name = recipe.get("base")
    if name:
        recipe = merged(load_recipe(name), {k: v for k, v in recipe.items() if k != "base"})
    resolved = copy.deepcopy(DEFAULTS)
    for key, value in recipe.items():
        if key not in MODES and key != "base":
            resolved[key] = copy.deepcopy(value)
    resolved.update(copy.deepcopy(recipe.get(mode) or {}))
    resolved["recipe"] = name or resolved["recipe"]
    resolved["mode"] = mode
    if "arch" not in resolved:
        raise RecipeError("recipe has no 'arch'")
    resolved["layout"] = "clip" if resolved["arch"].startswith("i3d") else "segments"
    check_settings(resolved)
    return resolved


# what a setting must be, where its type alone would let nonsense through (a NaN learning rate trains to the end;
# epochs 0 or a negative batch crash deep in torch); NULLABLE ones may be None (unset), as the config schema says
POSITIVE_INTEGERS = ("num_clips", "clip_len", "frame_interval", "epochs", "batch_size", "input_size", "eval_batch",
                     "test_views", "accumulate", "keep_checkpoints", "resize_short", "test_clip_len",
                     "test_num_clips", "test_crop_size", "reference_batch")
POSITIVE_NUMBERS = ("lr", "gamma", "head_lr_mult", "head_bias_lr_mult", "step_epochs", "grad_clip")
NON_NEGATIVE_NUMBERS = ("momentum", "weight_decay", "warmup_epochs", "warmup_ratio", "lr_floor", "mixup_alpha",
                        "cutmix_alpha", "seed")
NULLABLE = ("resize_short", "test_clip_len", "test_num_clips", "test_crop_size", "reference_batch", "step_epochs",
            "grad_clip", "lr_floor", "accumulate")  # accumulate null: from batch_policy (train.train.batch_plan)


def non_finite_key(value, path=(), infinite=True):
    """The key path (tuple) of the first NaN (or, with ``infinite``, infinite) number in nested dicts / lists, or
    None."""
    if isinstance(value, float) and (math.isnan(value) or (infinite and math.isinf(value))):
        return path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite_key(item, (*path, key), infinite)
        if found is not None:
            return found
    return None


# settings that change how fast a run goes or what it keeps, never what it computes, and `epochs` (training a
# finished run longer, as with mmaction2's --resume and a larger total_epochs): a resumed run may change them
RESUMABLE_CHANGES = ("data_workers", "compile", "keep_checkpoints", "eval_batch", "eval_checkpoint", "loader_memory_gb",
                     "epochs")


def settings_changes(old, new):
    """What differs between a checkpoint's settings and a run's (``key: old -> new``, sorted), the keys in
    RESUMABLE_CHANGES aside."""
    absent = "(absent)"
    changes = []
    for key in sorted((set(old) | set(new)) - set(RESUMABLE_CHANGES)):
        before, after = old.get(key, absent), new.get(key, absent)
        if before != after:
            changes.append(f"{key}: {json.dumps(before, default=str)} -> {json.dumps(after, default=str)}")
    return changes


def key_name(path):
    return ".".join(str(part) for part in path)


def check_config_numbers(config):
    """RecipeError naming the first NaN in a config (YAML's ``.nan`` passes every JSON-schema bound, as every
    comparison with NaN is false); infinities are the schema's and the recipes' to judge."""
    bad = non_finite_key(config, infinite=False)
    if bad is not None:
        raise RecipeError(f"config: {key_name(bad)} is NaN, not a number")


def check_settings(settings):
    """RecipeError naming the first setting that no run can use: a non-finite number anywhere, a count or size
    below 1, a learning rate or multiplier not above 0, a decay or ratio below 0."""
    where = f"recipe {settings.get('recipe') or settings.get('arch')} ({settings.get('mode')})"
    bad = non_finite_key(settings)
    if bad is not None:
        value = settings
        for part in bad:
            value = value[part]
        raise RecipeError(f"{where}: {key_name(bad)} is {value}, not a finite number")

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for key in (*POSITIVE_INTEGERS, *POSITIVE_NUMBERS, *NON_NEGATIVE_NUMBERS):
        if key not in settings:  # optional settings the code reads with a default of its own (head_lr_mult)
            continue
        value = settings[key]
        if value is None and key in NULLABLE:
            continue
        if key in POSITIVE_INTEGERS:
            ok, rule = isinstance(value, int) and not isinstance(value, bool) and value >= 1, "an integer >= 1"
        elif key in POSITIVE_NUMBERS:
            ok, rule = number(value) and value > 0, "a number > 0"
        else:
            ok, rule = number(value) and value >= 0, "a number >= 0"
        if not ok:
            raise RecipeError(f"{where}: {key} must be {rule}, got {value!r}")
    if settings.get("warmup_ratio", 0) > 1:
        raise RecipeError(f"{where}: warmup_ratio must be at most 1, got {settings['warmup_ratio']!r}")


def update_config(config, overlay):
    """``overlay`` over ``config`` recursively, as Snakemake merges ``--configfile`` files over config.yaml."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            update_config(config[key], value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def load_config(configfiles=()):
    """config.yaml of this checkout with ``configfiles`` merged over it in order (Snakemake's ``--configfile``)."""
    config = load_yaml(REPO / "config.yaml")
    for path in configfiles:
        try:
            overlay = load_yaml(path) or {}
        except ConfigError as error:
            raise RecipeError(str(error)) from None
        if not isinstance(overlay, dict):
            raise RecipeError(f"config file {path} is not a mapping")
        update_config(config, overlay)
    return config


def settings_for(config, model, dataset, mode):
    """What ``results/{model}_{dataset}_{mode}.json`` trains with (joint: both streams and their fusion)."""
    recipe = recipe_for(config.get("recipes") or {}, model, dataset)
    if mode == "joint":
        streams = {m: resolve(recipe, m) for m in MODES}
        fusion = streams["rgb"]["fusion"] or {"weights": dict(config.get("fusion") or {}), "rule": "prob"}
        return {**streams, "fusion": fusion}
    return resolve(recipe, mode)


def main(argv=None):
    parser = arguments.Parser(prog="python -m train.recipe", description=(
        "Print the settings a target results/MODEL_DATASET_MODE.json trains with, as JSON "
        "(this checkout's config.yaml, then the --configfile files merged over it, as Snakemake does when run "
        "from the repository root)."))
    parser.add_argument("model")
    parser.add_argument("dataset", help="a dataset of the registry (prep.datasets.DATASETS)")
    parser.add_argument("mode", choices=(*MODES, "joint"))
    parser.add_argument("--configfile", nargs="+", default=[], type=arguments.file_if_present,
                        help="YAML files merged over config.yaml, in order")
    args = parser.parse_args(argv)
    try:
        settings = settings_for(load_config(args.configfile), args.model, args.dataset, args.mode)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(settings, indent=2))
    return 0


def in_channels(settings):
    per_frame = 3 if settings["mode"] == "rgb" else 2
    return per_frame * settings["clip_len"] if settings["layout"] == "segments" else per_frame


def make_model(settings, num_classes):
    from train.models import build_model  # here, not at the top: the Snakefile imports this module without torch
    return build_model(settings["arch"], num_classes, in_channels=in_channels(settings),
                       num_segments=settings["num_clips"], **settings["model_options"])


if __name__ == "__main__":
    sys.exit(main())
