"""Map reference checkpoints onto our parameter names.

Sources:
  mmaction2    backbone.conv1.conv.weight, backbone.layer1.0.conv1.bn.weight, (TSM) ...conv1.conv.net.weight,
               ...non_local_block.{g.0,theta,phi.0,conv_out}.{conv,bn}..., cls_head.fc_cls.*
  pytorch_i3d  InceptionI3d keys (ours use the same names); num_batches_tracked may be absent
  torchvision  ImageNet ResNet (conv1.weight, bn1.*, layer1.0.conv1.weight, ...; fc.* is dropped)

Shape adaptation, checked key by key against the target model:
  2D -> 3D      inflation: the 2D kernel repeated over kernel_t and divided by kernel_t (I3D), so a
                temporally constant clip gives the 2D network's activations
  stem channels cross-modality init (TSN): conv1 averaged over the source's input channels and repeated
                to the target's in_channels (flow: 10 for TSN, 2 for I3D)
Keys the source lacks (num_batches_tracked, a torchvision head, non-local blocks absent from a plain
checkpoint) are filled from a freshly initialised model, so the result loads with strict=True.
"""
import re

import torch

SOURCES = ("mmaction2", "pytorch_i3d", "torchvision")
STEM_KEYS = ("backbone.conv1.weight", "Conv3d_1a_7x7.conv3d.weight")
HEAD_KEYS = ("fc.weight", "fc.bias", "logits.conv3d.weight", "logits.conv3d.bias")

_MMACTION2_RULES = [  # applied in order to the key without "backbone."
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


def _unwrap(state_dict):
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
    return {k[7:] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _from_mmaction2(sd):
    out = {}
    for key, value in sd.items():
        if key.startswith("cls_head.fc_cls."):
            out["fc." + key[len("cls_head.fc_cls."):]] = value
        elif key.startswith("backbone."):
            name = key[len("backbone."):]
            for pattern, repl in _MMACTION2_RULES:
                name = re.sub(pattern, repl, name)
            out["backbone." + name] = value
        # anything else (data_preprocessor mean/std buffers, ...) is not model state
    return out


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
    """value reshaped onto the target shape, or None when it cannot be (a different head)."""
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
    raise ValueError(f"cannot map {key} of shape {tuple(value.shape)} onto {shape}")


def convert_state_dict(state_dict, source, arch, model=None, in_channels=None, **options):
    """Reference state_dict (optionally wrapped in {"state_dict": ...}) -> state_dict for our `arch`.

    model:        the target model; missing keys (and a head of another size) are filled from it.
                  Without it, a model is built from arch / in_channels (default: the source's) /
                  options (num_classes, base_channels, ...; default num_classes: the source head's).
    """
    from . import build_model  # late import: __init__ imports this module

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    if source == "pytorch_i3d" and arch != "i3d_inception" or \
            source != "pytorch_i3d" and arch == "i3d_inception":
        raise ValueError(f"source {source!r} does not fit arch {arch!r} "
                         "(pytorch_i3d is for i3d_inception only)")
    sd = _unwrap(state_dict)
    if source == "mmaction2":
        sd = _from_mmaction2(sd)
    elif source == "torchvision":
        sd = {"backbone." + k: v for k, v in sd.items() if not k.startswith("fc.")}
    else:
        sd = dict(sd)

    def make_model(device="cpu"):
        opts = dict(options)
        num_classes = opts.pop("num_classes", None) or _source_num_classes(sd)
        with torch.device(device):
            return build_model(arch, num_classes, in_channels or _source_in_channels(sd), **opts)

    # shapes only: a meta-device model allocates nothing
    target = (model if model is not None else make_model("meta")).state_dict()

    unexpected = [k for k in sd if k not in target]
    if unexpected:
        raise ValueError(f"{len(unexpected)} {source} keys have no counterpart in {arch}: "
                         f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    out = {}
    for key, value in sd.items():
        value = _adapt(key, value, target[key].shape)
        if value is not None:
            out[key] = value.to(target[key].dtype) if target[key].is_floating_point() else value
    missing = [k for k in target if k not in out]
    if missing:
        if all(k.endswith("num_batches_tracked") for k in missing):
            out.update({k: torch.zeros((), dtype=torch.long) for k in missing})
        else:
            fresh = (model if model is not None else make_model()).state_dict()
            out.update({k: fresh[k].detach().clone() for k in missing})
    return {k: out[k] for k in target}  # the target's key order


def load_pretrained(model, state_dict, source, arch):
    """Convert `state_dict` for `model` (its in_channels / num_classes) and load it strictly.

    Returns the list of keys that came from the model's own initialisation (e.g. a new head)."""
    sd = _unwrap(state_dict)
    before = set(sd)
    converted = convert_state_dict(sd, source, arch, model=model)
    model.load_state_dict(converted, strict=True)
    renamed = set(_from_mmaction2(sd)) if source == "mmaction2" else (
        {"backbone." + k for k in before} if source == "torchvision" else before)
    return sorted(k for k in converted if k not in renamed)
