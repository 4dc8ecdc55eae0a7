"""The table of architectures: ``build_model(arch, ...)`` and ``list_archs()`` (see the package docstring).

A module of its own so that the converters (convert.py, pretrained.py) can build models without importing the
package that re-exports them (no import cycle).
"""
from .inception_i3d import InceptionI3d
from .mobilenet_v2 import TSMMobileNetV2
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
    archs["tsm_mobilenet_v2"] = (lambda nc, ic, ns, **o: TSMMobileNetV2(nc, ic, ns, **o)), ("shift_div",)
    archs["i3d_inception"] = (lambda nc, ic, ns, **o: InceptionI3d(nc, ic, **o)), ("head_pool",)
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
