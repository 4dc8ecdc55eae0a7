"""2D ResNet (He et al. 2016, torchvision "v1.5" layout: stride on the 3x3 conv) and TSN (Wang et al. 2016).

TSN runs every segment (frame or stacked flow snippet) through the same 2D network and averages
("segmental consensus").  Hyperparameters follow mmaction2's tsn_r50 1x1x3 recipe: dropout 0.4 and a
normal(0, 0.01) classifier.  Parameter names follow torchvision (conv1, bn1, layerN.i.convK/bnK,
downsample.0/1), so torchvision ImageNet weights load after adding the "backbone." prefix.
"""
import torch.nn as nn

from .heads import init_backbone, init_fc

# depth -> (block type, blocks per stage)
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        # hook for TSM: a temporal shift on the residual branch, before conv1 (identity otherwise)
        self.shift = nn.Identity()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.nonlocal_block = None  # hook for TSM-NL: a non-local block after the residual add + ReLU

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.relu(self.bn2(self.conv2(out)) + identity)
        return out if self.nonlocal_block is None else self.nonlocal_block(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.shift = nn.Identity()  # see BasicBlock
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # "pytorch" style stride
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.nonlocal_block = None  # hook for TSM-NL: a non-local block after the residual add + ReLU

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.relu(self.bn3(self.conv3(out)) + identity)
        return out if self.nonlocal_block is None else self.nonlocal_block(out)


class ResNet2d(nn.Module):
    """ImageNet ResNet trunk without pooling/classifier; widths base, 2*base, 4*base, 8*base (x expansion)."""

    def __init__(self, depth=50, in_channels=3, base_channels=64):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; valid: {sorted(DEPTHS)}")
        kind, stages = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = base_channels
        for i, n in enumerate(stages):
            planes = base_channels * 2 ** i
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            blocks = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            blocks += [block(inplanes, planes) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.feat_dim = inplanes
        init_backbone(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class TSN(nn.Module):
    """Temporal Segment Network: x (B, C, T=segments, H, W) -> logits (B, num_classes).

    Consensus as mmaction2's TSNHead: spatial average pool, average over segments, dropout, fc.  The fc
    is affine, so in eval this is exactly the average of per-segment class scores.
    """

    default_dropout = 0.4
    default_init_std = 0.01

    def __init__(self, depth=50, num_classes=400, in_channels=3, num_segments=3, dropout=None,
                 init_std=None, base_channels=64):
        super().__init__()
        self.num_segments = num_segments  # recipe default; forward uses the T of its input
        self.backbone = ResNet2d(depth, in_channels, base_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # adaptive so small CPU inputs (56x56) work
        self.dropout = nn.Dropout(self.default_dropout if dropout is None else dropout)
        self.fc = nn.Linear(self.backbone.feat_dim, num_classes)
        init_fc(self.fc, self.default_init_std if init_std is None else init_std)

    def segment_features(self, x):
        """(B, C, T, H, W) -> per-segment pooled features (B, T, D)."""
        b, c, t, h, w = x.shape
        x = x.transpose(1, 2).reshape(b * t, c, h, w)  # segments of one clip stay contiguous
        return self.avgpool(self.backbone(x)).flatten(1).view(b, t, -1)

    def forward(self, x):
        feats = self.segment_features(x).mean(dim=1)
        return self.fc(self.dropout(feats))
