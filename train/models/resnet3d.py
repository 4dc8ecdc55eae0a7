"""I3D ResNet (Carreira & Zisserman 2017 inflation applied to ResNet), as mmaction2's ResNet3d I3D recipe
(i3d_imagenet-pretrained-r50 32x2x1): conv1 5x7x7 stride (2,2,2); pool1 (1,3,3) max pool, temporal stride 2;
pool2 = (2,1,1) max pool after layer1; inflate ((1,1,1),(1,0,1,0),(1,0,1,0,1,0),(0,1,0)); inflate style
"3x1x1" (an inflated bottleneck gets a 3x1x1 conv1 and keeps a 1x3x3 conv2); head: global average pool,
dropout 0.5, fc normal(0, 0.01).  Optional non-local blocks after the residual add+ReLU of the blocks
given by `non_local` (mmaction2 I3D-NL: ((0,0,0),(0,1,0,1),(0,1,0,1,0,1),(0,0,0)), sub_sample, no scale).

Lighter depths (our choice, no reference recipe): r18/r34 use BasicBlocks whose inflated blocks get a
3x3x3 conv1 and a 1x3x3 conv2 (mmaction2 BasicBlock3d "3x1x1"); r18 inflates ((1,1),(1,0),(1,0),(0,1)),
r34 uses the r50 pattern; r101 alternates (1,0,...) in layer3.
"""
import torch.nn as nn

from .heads import init_backbone, init_fc
from .nonlocal_block import NonLocalBlock3d
from .resnet import DEPTHS


def _alternate(n, first=1):
    return tuple((i + first) % 2 for i in range(n))


INFLATE = {18: ((1, 1), (1, 0), (1, 0), (0, 1)),
           34: ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
           50: ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
           101: ((1, 1, 1), (1, 0, 1, 0), _alternate(23), (0, 1, 0))}


def non_local_pattern(depth):
    """mmaction2's I3D-NL placement generalised: every second block (1, 3, ...) of layer2 and layer3."""
    stages = DEPTHS[depth][1]
    return tuple(_alternate(n, first=0) if i in (1, 2) else (0,) * n for i, n in enumerate(stages))


def _conv_bn(cin, cout, kernel, stride=1):
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm3d(cout)


class BasicBlock3d(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, inflate=False, non_local=None):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, (3, 3, 3) if inflate else (1, 3, 3),
                                        (1, stride, stride))
        self.conv2, self.bn2 = _conv_bn(planes, planes, (1, 3, 3))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        # non_local: a NonLocalBlock3d mode, applied after the residual add + ReLU (as mmaction2)
        self.nonlocal_block = (NonLocalBlock3d(planes * self.expansion, non_local)
                               if non_local else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)) + identity)
        return out if self.nonlocal_block is None else self.nonlocal_block(out)


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, inflate=False, non_local=None):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, (3, 1, 1) if inflate else (1, 1, 1))
        self.conv2, self.bn2 = _conv_bn(planes, planes, (1, 3, 3), (1, stride, stride))
        self.conv3, self.bn3 = _conv_bn(planes, planes * 4, (1, 1, 1))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        # non_local: a NonLocalBlock3d mode, applied after the residual add + ReLU (as mmaction2)
        self.nonlocal_block = (NonLocalBlock3d(planes * self.expansion, non_local)
                               if non_local else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.relu(self.bn3(self.conv3(out)) + identity)
        return out if self.nonlocal_block is None else self.nonlocal_block(out)


class ResNet3d(nn.Module):
    def __init__(self, depth=50, in_channels=3, base_channels=64, inflate=None, non_local=None,
                 non_local_mode="embedded_gaussian"):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; valid: {sorted(DEPTHS)}")
        kind, stages = DEPTHS[depth]
        block = BasicBlock3d if kind == "basic" else Bottleneck3d
        inflate = INFLATE[depth] if inflate is None else inflate
        non_local = tuple((0,) * n for n in stages) if non_local is None else non_local
        self.conv1 = nn.Conv3d(in_channels, base_channels, (5, 7, 7), (2, 2, 2), (2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (2, 2, 2), (0, 1, 1))  # temporal kernel 1: subsampling
        self.pool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1))
        inplanes = base_channels
        for i, n in enumerate(stages):
            planes = base_channels * 2 ** i
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes * block.expansion, 1, (1, stride, stride), bias=False),
                    nn.BatchNorm3d(planes * block.expansion))
            blocks = []
            for j in range(n):
                blocks.append(block(inplanes, planes, stride if j == 0 else 1,
                                    downsample if j == 0 else None, bool(inflate[i][j]),
                                    non_local_mode if non_local[i][j] else None))
                inplanes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.feat_dim = inplanes
        init_backbone(self)
        for m in self.modules():  # init_backbone reset the non-local BNs; restore their identity init
            if isinstance(m, NonLocalBlock3d):
                m.init_weights()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool2(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))


class I3D(nn.Module):
    """I3D ResNet classifier: x (B, C, T, H, W) -> logits (B, num_classes)."""

    def __init__(self, depth=50, num_classes=400, in_channels=3, dropout=0.5, init_std=0.01,
                 base_channels=64, non_local=None, non_local_mode="embedded_gaussian"):
        super().__init__()
        self.backbone = ResNet3d(depth, in_channels, base_channels, non_local=non_local,
                                 non_local_mode=non_local_mode)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.feat_dim, num_classes)
        init_fc(self.fc, init_std)

    def forward(self, x):
        return self.fc(self.dropout(self.avgpool(self.backbone(x)).flatten(1)))
