"""Map reference checkpoints onto our parameter names, strictly.

Sources (``source``) and the layouts they come in:
  mmaction2    ResNet family: backbone.conv1.conv.weight, backbone.layer1.0.conv1.bn.weight, (TSM)
               ...conv1.conv.net.weight, ...non_local_block.{g.0,theta,phi.0,conv_out}.{conv,bn}...;
               MobileNetV2-TSM: our names are mmaction2's (backbone.layer2.1.conv.0.net.conv.weight ...);
               head cls_head.fc_cls.*  ->  fc.*
  pytorch_i3d  InceptionI3d keys (ours use the same names)
  torchvision  ImageNet ResNet (conv1.weight, bn1.*, layer1.0.conv1.weight, ...) and MobileNetV2 (features.N...);
               its 1000-class classifier (fc.* / classifier.*) is not loaded

Shape adaptation, checked key by key against the target model:
  2D -> 3D      inflation: the 2D kernel repeated over kernel_t and divided by kernel_t (I3D), so a
                temporally constant clip gives the 2D network's activations
  stem channels cross-modality init (TSN paper): conv1 averaged over the source's input channels and repeated
                to the target's in_channels (flow: 10 for TSN/TSM, 2 for I3D)

Strict: every key of the source must land on a key of the target (only the keys listed in NOT_MODEL_STATE are
dropped), and every key of the target must come from the source, except exactly these, which are taken from the
target model's own initialisation:
  *.num_batches_tracked   older checkpoints (pytorch-i3d's, torchvision's 2017 ResNets) predate this BN buffer
  the classifier          always for torchvision (an ImageNet head), else when the checkpoint's class count differs
  *.nonlocal_block.*      only from torchvision: a 2D ImageNet network has no non-local blocks (mmaction2's I3D-NL
                          and TSM-NL recipes start them fresh)
Anything else raises :class:`ConversionError` naming the first missing / unexpected keys.
"""
import re

import torch

from .mobilenet_v2 import STAGES
from .registry import build_model

SOURCES = ("mmaction2", "pytorch_i3d", "torchvision")
STEM_KEYS = ("backbone.conv1.weight", "backbone.conv1.conv.weight", "Conv3d_1a_7x7.conv3d.weight")
HEAD_KEYS = ("fc.weight", "fc.bias", "logits.conv3d.weight", "logits.conv3d.bias")
# key prefixes of a checkpoint that are not model state: dropped on purpose, per source
NOT_MODEL_STATE = {
    "mmaction2": ("data_preprocessor.",),           # mean/std buffers of mmaction2's preprocessor
    "torchvision": ("fc.", "classifier."),          # the ImageNet classifier (ResNet / MobileNetV2)
    "pytorch_i3d": (),
}

_MMACTION2_RESNET_RULES = [  # applied in order to the key without "backbone."
    (r"\.conv\.net\.", ".conv."),                         # TSM wraps conv1 in TemporalShift(net=conv)
    (r"^(layer\d+\.\d+)\.block\.", r"\1."),              # TSM-NL wraps blocks in NL3DWrapper(block)
    (r"non_local_block\.", "nonlocal_block."),
    (r"nonlocal_block\.(g|phi)\.0\.conv\.", r"nonlocal_block.\1."),
    (r"nonlocal_block\.(g|phi|theta)\.conv\.", r"nonlocal_block.\1."),
    (r"nonlocal_block\.conv_out\.conv\.", "nonlocal_block.W."),
    (r"nonlocal_block\.conv_out\.bn\.", "nonlocal_block.bn."),
    (r"(^|\.)conv(\d)\.conv\.", r"\1conv\2."),             # ConvModule(conv, bn) -> convN / bnN
    (r"(^|\.)conv(\d)\.bn\.", r"\1bn\2."),
    (r"downsample\.conv\.", "downsample.0."),
    (r"downsample\.bn\.", "downsample.1."),
]


class ConversionError(ValueError):
    """A checkpoint that does not fit the target model; ``missing`` / ``unexpected`` list the offending keys."""

    def __init__(self, message, missing=(), unexpected=()):
        super().__init__(message)
        self.missing, self.unexpected = list(missing), list(unexpected)


def _family(arch):
    if arch == "i3d_inception":
        return "inception"
    return "mobilenet_v2" if "mobilenet_v2" in arch else "resnet"


def _unwrap(state_dict):
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
    return {k[7:] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _from_mmaction2(sd, family):
    out = {}
    for key, value in sd.items():
        if key.startswith("cls_head.fc_cls."):
            out["fc." + key[len("cls_head.fc_cls."):]] = value
        elif key.startswith("backbone.") and family == "resnet":
            name = key[len("backbone."):]
            for pattern, repl in _MMACTION2_RESNET_RULES:
                name = re.sub(pattern, repl, name)
            out["backbone." + name] = value
        else:  # MobileNetV2-TSM keeps mmaction2's names; anything else is reported as unexpected
            out[key] = value
    return out


def _torchvision_mobilenet_v2_name(key):
    """torchvision mobilenet_v2 ``features.*`` key -> mmaction2 MobileNetV2 name (before the TSM wrapper).

    features.0 is the stem (conv1), features.18 the last 1x1 conv (conv2); features.1..17 are the inverted residual
    blocks in stage order. Inside a block torchvision numbers [ConvBNReLU(expand), ConvBNReLU(depthwise), Conv2d,
    BatchNorm2d] (no expanding conv when the expand ratio is 1), mmaction2 [ConvModule, ConvModule, ConvModule]."""
    match = re.fullmatch(r"features\.(\d+)\.(conv\.\d+\..+|[01]\..+)", key)
    last = sum(n for _, _, n, _ in STAGES) + 1
    if not match or int(match.group(1)) > last:
        return key  # not a MobileNetV2 key: reported as unexpected
    number, rest = int(match.group(1)), match.group(2)
    if number in (0, last):
        name = "conv1" if number == 0 else "conv2"
        return f"{name}." + re.sub(r"^0\.", "conv.", re.sub(r"^1\.", "bn.", rest))
    stage, first = 1, 1
    for expand_ratio, _, blocks, _ in STAGES:
        if number < first + blocks:
            break
        stage, first = stage + 1, first + blocks
    project = 2 if expand_ratio != 1 else 1  # position of the projecting conv; its BN follows it
    index, tail = re.fullmatch(r"conv\.(\d+)\.(.+)", rest).groups()
    index = int(index)
    if index < project:  # a ConvBNReLU: .0 conv, .1 BN
        tail = re.sub(r"^0\.", "conv.", re.sub(r"^1\.", "bn.", tail))
    else:
        index, tail = project, ("conv." if index == project else "bn.") + tail
    return f"layer{stage}.{number - first}.conv.{index}.{tail}"


def _from_torchvision(sd, family):
    if family == "mobilenet_v2":
        return {"backbone." + (_torchvision_mobilenet_v2_name(k) if k.startswith("features.") else k): v
                for k, v in sd.items()}
    return {"backbone." + k: v for k, v in sd.items()}


def _rewrap(sd, target):
    """Source names that lack a wrapper level of the target (mmaction2's TSM ``net.``) get it."""
    wrapped = {k.replace(".net.", "."): k for k in target if ".net." in k}
    return {wrapped.get(k, k) if k not in target else k: v for k, v in sd.items()}


def _source_in_channels(sd):
    for key in STEM_KEYS:
        if key in sd:
            return sd[key].shape[1]
    return 3


def _source_num_classes(sd):
    for key in ("fc.weight", "logits.conv3d.weight"):
        if key in sd:
            return sd[key].shape[0]
    return 400


def _adapt(key, value, shape):
    """value reshaped onto the target shape, or None when it is a classifier of another class count."""
    shape = tuple(shape)
    if tuple(value.shape) == shape:
        return value
    if value.dim() == 4 and len(shape) == 5:  # inflate a 2D kernel over time
        kt = shape[2]
        value = value.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
    if key in STEM_KEYS and value.shape[1] != shape[1]:  # cross-modality init of the stem
        value = value.mean(dim=1, keepdim=True)
        value = value.repeat(1, shape[1], *([1] * (value.dim() - 2)))
    if tuple(value.shape) == shape:
        return value
    if key in HEAD_KEYS:
        return None
    raise ConversionError(f"cannot map {key} of shape {tuple(value.shape)} onto {shape}")


def _first(keys, n=3):
    """The first n keys (in the order of their state dict: the first layers first), and how many more."""
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _may_come_from_model(key, source):
    if key.endswith("num_batches_tracked"):
        return True
    if key in HEAD_KEYS:
        return source == "torchvision"
    return source == "torchvision" and ".nonlocal_block." in key


def convert_checked(state_dict, source, arch, model=None, in_channels=None, **options):
    """(state_dict for our `arch`, sorted keys taken from the model's own initialisation); see the module doc."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    if (source == "pytorch_i3d") != (arch == "i3d_inception"):
        raise ValueError(f"source {source!r} does not fit arch {arch!r} "
                         "(pytorch_i3d is for i3d_inception only, and i3d_inception loads only pytorch_i3d)")
    family = _family(arch)
    sd = {k: v for k, v in _unwrap(state_dict).items() if not k.startswith(NOT_MODEL_STATE[source])}
    if source == "mmaction2":
        sd = _from_mmaction2(sd, family)
    elif source == "torchvision":
        sd = _from_torchvision(sd, family)

    def make_model(device="cpu"):
        opts = dict(options)
        num_classes = opts.pop("num_classes", None) or _source_num_classes(sd)
        with torch.device(device):
            return build_model(arch, num_classes, in_channels or _source_in_channels(sd), **opts)

    # shapes only: a meta-device model allocates nothing
    target = (model if model is not None else make_model("meta")).state_dict()
    sd = _rewrap(sd, target)

    unexpected = [k for k in sd if k not in target]
    if unexpected:
        raise ConversionError(f"{len(unexpected)} {source} keys have no counterpart in {arch}: "
                              f"{_first(unexpected)}", unexpected=unexpected)
    out = {}
    for key, value in sd.items():
        value = _adapt(key, value, target[key].shape)
        if value is not None:
            out[key] = value.to(target[key].dtype) if target[key].is_floating_point() else value
    missing = [k for k in target if k not in out]
    head_replaced = any(k in sd and k not in out for k in HEAD_KEYS)
    lacking = [k for k in missing if not (_may_come_from_model(k, source) or head_replaced and k in HEAD_KEYS)]
    if lacking:
        raise ConversionError(f"{len(lacking)} keys of {arch} are missing from the {source} checkpoint: "
                              f"{_first(lacking)}", missing=lacking)
    if all(k.endswith("num_batches_tracked") for k in missing):
        out.update({k: torch.zeros((), dtype=torch.long) for k in missing})  # no need to build a model
    else:
        fresh = (model if model is not None else make_model()).state_dict()
        out.update({k: fresh[k].detach().clone() for k in missing})
    return {k: out[k] for k in target}, sorted(missing)  # the target's key order


def convert_state_dict(state_dict, source, arch, model=None, in_channels=None, **options):
    """Reference state_dict (optionally wrapped in {"state_dict": ...}) -> state_dict for our `arch`.

    model:        the target model (its in_channels / num_classes; missing keys that may be, see the module doc,
                  are taken from it). Without it, a model is built from arch / in_channels (default: the
                  source's) / options (num_classes, base_channels, ...; default num_classes: the source head's).
    """
    return convert_checked(state_dict, source, arch, model, in_channels, **options)[0]


def load_pretrained(model, state_dict, source, arch):
    """Convert `state_dict` for `model` (its in_channels / num_classes) and load it strictly.

    Returns the sorted keys that came from the model's own initialisation (e.g. a new head)."""
    converted, initialised = convert_checked(state_dict, source, arch, model=model)
    model.load_state_dict(converted, strict=True)
    return initialised
