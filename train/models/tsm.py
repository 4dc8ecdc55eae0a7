"""Temporal Shift Module (Lin et al. 2019) on a 2D ResNet, as mmaction2's tsm_r50 1x1x8 recipe.

Residual shift ("blockres"): inside each residual block, before conv1, 1/shift_div of the channels take
the next segment's values, another 1/shift_div the previous segment's, zero at the clip ends; the
identity path is not shifted.  Head: dropout 0.5 per segment, fc normal(0, 0.001), average of the
per-segment class scores.

tsm_r50_nl_*: mmaction2's TSM-NL recipe adds non-local blocks after blocks ((0,0,0),(1,0,1,0),(1,0,1,0,1,0),
(0,0,0)) of the 2D network; they see each clip's segments as a (C, T, H, W) volume.
"""
import torch
import torch.nn as nn

from .nonlocal_block import NonLocalBlock3d
from .resnet import TSN


def temporal_shift(x, num_segments, shift_div=8):
    """x: (N*T, C, H, W) with the T segments of each clip contiguous.

    Channels [0, C/div) move one step back in time (out[t] = x[t+1]), channels [C/div, 2C/div) one step
    forward (out[t] = x[t-1]); the rest are unchanged.  Zero padding at the ends.
    """
    nt, c, h, w = x.shape
    x = x.view(nt // num_segments, num_segments, c, h, w)
    fold = c // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(nt, c, h, w)


class TemporalShift(nn.Module):
    def __init__(self, num_segments=8, shift_div=8):
        super().__init__()
        self.num_segments = num_segments  # set by TSM.forward from the input's T
        self.shift_div = shift_div

    def forward(self, x):
        return temporal_shift(x, self.num_segments, self.shift_div)

    def extra_repr(self):
        return f"shift_div={self.shift_div}"


class SegmentNonLocal(NonLocalBlock3d):
    """Non-local block over the segments of each clip: (N*T, C, H, W) -> (N, C, T, H, W) -> back."""

    def __init__(self, in_channels, mode, num_segments=8):
        super().__init__(in_channels, mode)
        self.num_segments = num_segments  # set by TSM.forward from the input's T

    def forward(self, x):
        nt, c, h, w = x.shape
        x = x.view(nt // self.num_segments, self.num_segments, c, h, w).transpose(1, 2)
        return super().forward(x).transpose(1, 2).reshape(nt, c, h, w)


def segment_consensus(model, x):
    """The TSM forward shared by its trunks: x (B, C, T, H, W) through ``model.backbone`` segment by segment (the
    shifts mix neighbours), pooled, dropout, ``model.fc`` per segment, then the mean of the segment scores
    (mmaction2 TSMHead with AvgConsensus)."""
    b, c, t, h, w = x.shape
    for module in model.shifts:
        module.num_segments = t
    x = x.transpose(1, 2).reshape(b * t, c, h, w)
    feats = model.avgpool(model.backbone(x)).flatten(1)
    scores = model.fc(model.dropout(feats))
    return scores.view(b, t, -1).mean(dim=1)


def _out_channels(block):
    last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return last_bn.num_features


def tsm_non_local_pattern(depth):
    """Every second block (0, 2, ...) of layer2 and layer3, as mmaction2's TSM-NL r50 recipe."""
    from .resnet import DEPTHS
    return tuple(tuple((j + 1) % 2 if i in (1, 2) else 0 for j in range(n))
                 for i, n in enumerate(DEPTHS[depth][1]))


class TSM(TSN):
    default_dropout = 0.5
    default_init_std = 0.001

    def __init__(self, depth=50, num_classes=400, in_channels=3, num_segments=8, dropout=None,
                 init_std=None, base_channels=64, shift_div=8, non_local_mode=None):
        super().__init__(depth, num_classes, in_channels, num_segments, dropout, init_std, base_channels)
        if shift_div < 1:
            raise ValueError(f"shift_div must be >= 1, got {shift_div}")
        self.shifts = []  # plain list (not registered here): modules that need the input's T
        pattern = tsm_non_local_pattern(depth) if non_local_mode else None
        for i, name in enumerate(("layer1", "layer2", "layer3", "layer4")):
            for j, block in enumerate(getattr(self.backbone, name)):
                block.shift = TemporalShift(num_segments, shift_div)
                self.shifts.append(block.shift)
                if pattern and pattern[i][j]:
                    block.nonlocal_block = SegmentNonLocal(_out_channels(block), non_local_mode, num_segments)
                    self.shifts.append(block.nonlocal_block)

    def forward(self, x):
        return segment_consensus(self, x)
