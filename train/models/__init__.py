"""Action-recognition models: TSN, TSM (ResNet, MobileNetV2), I3D ResNet (+ non-local), I3D Inception-v1.

    build_model(arch, num_classes, in_channels=3, num_segments=8, **options) -> nn.Module
    convert_state_dict(state_dict, source, arch, ...) -> state_dict loadable (strict) into build_model(arch)
    apply_pretrained(model, settings, path) -> record | None   (a recipe's `pretrained` weights, see pretrained.py)

Every model takes x of shape (B, C, T, H, W) and returns logits (B, num_classes).  For TSN/TSM, T is the
segment axis (each segment goes through the 2D network); I3D models run over the clip.

Archs (list_archs()):
    tsn_r{18,34,50,101}, tsm_r{18,34,50,101}, i3d_r{18,34,50,101},
    i3d_r50_nl_{embedded_gaussian,gaussian,dot_product}, tsm_r50_nl_{embedded_gaussian,gaussian,dot_product},
    tsm_mobilenet_v2, i3d_inception
    Reference recipes: tsn_r50 (mmaction2 1x1x3), tsm_r50 (1x1x8), i3d_r50 (32x2x1), i3d_r50_nl_* (32x2x1),
    tsm_r50_nl_embedded_gaussian (1x1x8), tsm_mobilenet_v2 (mmaction2 MobileNetV2TSM 1x1x8),
    i3d_inception (piergiaj/pytorch-i3d); the others are lighter or deeper variants built the same way
    (see resnet3d.py for the r18/r34/r101 inflate patterns).

Options (keyword):
    dropout        classifier dropout (defaults: TSN 0.4, TSM 0.5, I3D 0.5, I3D Inception 0.5)
    init_std       std of the normal classifier init (TSN 0.01, TSM 0.001, I3D 0.01; Inception: PyTorch default)
    base_channels  width of the stem (default 64); every width scales with it (16 -> ~16x cheaper);
                   tsm_mobilenet_v2: widths x base_channels / 64 (mmaction2's widen_factor)
    shift_div      TSM only: 1/shift_div of the channels shift each way (default 8)

Module layering (no cycles): registry (the arch table) <- convert (checkpoint layouts) <- pretrained (loading;
train/weights.py has the files and the recipe key) <- this package's re-exports.
"""
from .convert import SOURCES, ConversionError, convert_state_dict, load_pretrained
from .inception_i3d import InceptionI3d
from .mobilenet_v2 import TSMMobileNetV2
from .pretrained import PretrainedError, apply_pretrained
from .registry import ARCHS, build_model, list_archs
from .resnet import TSN
from .resnet3d import I3D
from .tsm import TSM

__all__ = ["ARCHS", "SOURCES", "ConversionError", "PretrainedError", "apply_pretrained", "build_model",
           "convert_state_dict", "list_archs", "load_pretrained", "TSN", "TSM", "TSMMobileNetV2", "I3D",
           "InceptionI3d"]
