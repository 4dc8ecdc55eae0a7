"""Action-recognition models: TSN, TSM, I3D ResNet (+ non-local), I3D Inception-v1.

    build_model(arch, num_classes, in_channels=3, num_segments=8, **options) -> nn.Module
    convert_state_dict(state_dict, source, arch, ...) -> state_dict loadable (strict) into build_model(arch)

Every model takes x of shape (B, C, T, H, W) and returns logits (B, num_classes).  For TSN/TSM, T is the
segment axis (each segment goes through the 2D network); I3D models run over the clip.

Archs (list_archs()):
    tsn_r{18,34,50,101}, tsm_r{18,34,50,101}, i3d_r{18,34,50,101},
    i3d_r50_nl_{embedded_gaussian,gaussian,dot_product}, tsm_r50_nl_{embedded_gaussian,gaussian,dot_product},
    i3d_inception
    Reference recipes: tsn_r50 (mmaction2 1x1x3), tsm_r50 (1x1x8), i3d_r50 (32x2x1), i3d_r50_nl_* (32x2x1),
    tsm_r50_nl_embedded_gaussian (1x1x8), i3d_inception (piergiaj/pytorch-i3d); the others are lighter
    or deeper variants built the same way (see resnet3d.py for the r18/r34/r101 inflate patterns).

Options (keyword):
    dropout        classifier dropout (defaults: TSN 0.4, TSM 0.5, I3D 0.5, I3D Inception 0.5)
    init_std       std of the normal classifier init (TSN 0.01, TSM 0.001, I3D 0.01; Inception: PyTorch default)
    base_channels  width of the stem (default 64); every width scales with it (16 -> ~16x cheaper)
    shift_div      TSM only: 1/shift_div of the channels shift each way (default 8)
"""
from .convert import SOURCES, convert_state_dict, load_pretrained
from .inception_i3d import InceptionI3d
from .resnet import TSN
from .resnet3d import I3D, non_local_pattern
from .tsm import TSM

NL_MODES = ("embedded_gaussian", "gaussian", "dot_product")
COMMON_OPTIONS = ("dropout", "init_std", "base_channels")


def _spec():
    archs = {}
    for depth in (18, 34, 50, 101):
        archs[f"tsn_r{depth}"] = (lambda d: lambda nc, ic, ns, **o: TSN(d, nc, ic, ns, **o))(depth), ()
        archs[f"tsm_r{depth}"] = (lambda d: lambda nc, ic, ns, **o: TSM(d, nc, ic, ns, **o))(depth), ("shift_div",)
        archs[f"i3d_r{depth}"] = (lambda d: lambda nc, ic, ns, **o: I3D(d, nc, ic, **o))(depth), ()
    for mode in NL_MODES:
        archs[f"i3d_r50_nl_{mode}"] = (lambda m: lambda nc, ic, ns, **o: I3D(
            50, nc, ic, non_local=non_local_pattern(50), non_local_mode=m, **o))(mode), ()
        archs[f"tsm_r50_nl_{mode}"] = (lambda m: lambda nc, ic, ns, **o: TSM(
            50, nc, ic, ns, non_local_mode=m, **o))(mode), ("shift_div",)
    archs["i3d_inception"] = (lambda nc, ic, ns, **o: InceptionI3d(nc, ic, **o)), ()
    return archs


ARCHS = _spec()


def list_archs():
    return sorted(ARCHS)


def build_model(arch, num_classes, in_channels=3, num_segments=8, **options):
    """Build `arch` (see list_archs()) with a fresh reference initialisation (no pretrained weights)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid archs: {', '.join(list_archs())}")
    builder, extra = ARCHS[arch]
    valid = COMMON_OPTIONS + extra
    for key in options:
        if key not in valid:
            raise ValueError(f"unknown option {key!r} for arch {arch!r}; valid options: {', '.join(valid)}")
    if "base_channels" in options and not (isinstance(options["base_channels"], int)
                                           and options["base_channels"] >= 1):
        raise ValueError(f"base_channels must be a positive int, got {options['base_channels']!r}")
    if options.get("dropout") is not None and not 0.0 <= options["dropout"] < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {options['dropout']!r}")
    if int(num_classes) < 1 or int(in_channels) < 1 or int(num_segments) < 1:
        raise ValueError("num_classes, in_channels and num_segments must be >= 1")
    return builder(int(num_classes), int(in_channels), int(num_segments), **options)


__all__ = ["ARCHS", "SOURCES", "build_model", "convert_state_dict", "list_archs", "load_pretrained",
           "TSN", "TSM", "I3D", "InceptionI3d"]
