"""MobileNetV2 (Sandler et al. 2018) with the Temporal Shift Module, as mmaction2's MobileNetV2TSM.

Reference recipe: mmaction2 configs/recognition/tsm/tsm_imagenet-pretrained-mobilenetv2_8xb16-1x1x8-100e_kinetics400-rgb.py
(backbone mmaction/models/backbones/mobilenet_v2.py + mobilenet_v2_tsm.py, head TSMHead: 1280 -> classes, dropout 0.5,
fc normal(0, 0.001), average of the per-segment scores).

Structure (mmaction2 MobileNetV2.arch_settings): a 3x3 stride-2 stem to 32 channels, seven stages of inverted
residual blocks (expand ratio, channels, blocks, stride) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1)
(6,160,3,2) (6,320,1,1), and a 1x1 conv to 1280; ReLU6 everywhere but after the projecting 1x1 conv.

Names are mmaction2's (conv1.conv / conv1.bn, layerN.i.conv.k.conv / .bn, conv2.conv / conv2.bn), including the
TSM wrapper: in every block with an expanding conv and an identity shortcut, conv.0 becomes a shift followed by
``net`` (the original conv module), so its keys read layerN.i.conv.0.net.conv.weight as in mmaction2's checkpoints.
The shift sits on the residual branch only (the identity is not shifted), as in mmaction2.
"""
import torch.nn as nn

from .heads import init_backbone, init_fc
from .tsm import TemporalShift, segment_consensus

# (expand ratio, output channels, blocks, stride of the first block): mmaction2 MobileNetV2.arch_settings
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
LAST_CHANNELS = 1280


def make_divisible(value, divisor=8, min_ratio=0.9):
    """Round a channel count to the nearest multiple of divisor, never below divisor nor by more than 10 %
    (mmaction2 mobilenet_v2.make_divisible; the same rule as torchvision's _make_divisible)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < min_ratio * value else rounded


class ConvModule(nn.Module):
    """conv -> BN -> optional ReLU6, named like mmcv's ConvModule (conv, bn)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1, activation=True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU6(inplace=True) if activation else nn.Identity()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class ShiftThen(nn.Module):
    """A temporal shift, then ``net``: the position (and key prefix ``net.``) of mmaction2's TemporalShift(net)."""

    def __init__(self, net, num_segments, shift_div):
        super().__init__()
        self.shift = TemporalShift(num_segments, shift_div)
        self.net = net

    def forward(self, x):
        return self.net(self.shift(x))


class InvertedResidual(nn.Module):
    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = [ConvModule(in_channels, hidden)] if expand_ratio != 1 else []
        layers += [ConvModule(hidden, hidden, 3, stride, groups=hidden),  # depthwise
                   ConvModule(hidden, out_channels, activation=False)]     # linear bottleneck
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """The 2D trunk without pooling/classifier: (N, C, H, W) -> (N, 1280, H/32, W/32).

    widen_factor scales every width but the last conv's 1280 (kept unless widen_factor > 1), as mmaction2.
    """

    def __init__(self, in_channels=3, widen_factor=1.0):
        super().__init__()
        channels = make_divisible(32 * widen_factor)
        self.conv1 = ConvModule(in_channels, channels, 3, 2)
        for index, (expand_ratio, out, blocks, stride) in enumerate(STAGES, start=1):
            out = make_divisible(out * widen_factor)
            layer = []
            for j in range(blocks):
                layer.append(InvertedResidual(channels, out, stride if j == 0 else 1, expand_ratio))
                channels = out
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.feat_dim = int(LAST_CHANNELS * widen_factor) if widen_factor > 1.0 else LAST_CHANNELS
        self.conv2 = ConvModule(channels, self.feat_dim)
        init_backbone(self)  # mmaction2 init_cfg: Kaiming (fan_out) convs, BN weight 1 / bias 0

    def blocks(self):
        return [block for index in range(1, len(STAGES) + 1) for block in getattr(self, f"layer{index}")]

    def forward(self, x):
        x = self.conv1(x)
        for index in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.conv2(x)


class TSMMobileNetV2(nn.Module):
    """TSM on MobileNetV2: x (B, C, T=segments, H, W) -> logits (B, num_classes).

    base_channels (default 64 for every arch of this package) scales the widths by base_channels / 64, so the cheap
    CPU variants are built the same way as for the ResNets.
    """

    default_dropout = 0.5
    default_init_std = 0.001

    def __init__(self, num_classes=400, in_channels=3, num_segments=8, dropout=None, init_std=None,
                 base_channels=64, shift_div=8):
        super().__init__()
        if shift_div < 1:
            raise ValueError(f"shift_div must be >= 1, got {shift_div}")
        self.backbone = MobileNetV2(in_channels, widen_factor=base_channels / 64)
        self.shifts = []  # modules that need the input's T (plain list: not registered twice)
        for block in self.backbone.blocks():
            if len(block.conv) == 3 and block.use_res_connect:  # mmaction2 make_temporal_shift's condition
                block.conv[0] = ShiftThen(block.conv[0], num_segments, shift_div)
                self.shifts.append(block.conv[0].shift)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(self.default_dropout if dropout is None else dropout)
        self.fc = nn.Linear(self.backbone.feat_dim, num_classes)
        init_fc(self.fc, self.default_init_std if init_std is None else init_std)

    def forward(self, x):
        return segment_consensus(self, x)
