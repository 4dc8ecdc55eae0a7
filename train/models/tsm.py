"""Temporal Shift Module (Lin et al. 2019) on a 2D ResNet, as mmaction2's tsm_r50 1x1x8 recipe.

Residual shift ("blockres"): inside each residual block, before conv1, 1/shift_div of the channels take
the next segment's values, another 1/shift_div the previous segment's, zero at the clip ends; the
identity path is not shifted.  Head: dropout 0.5 per segment, fc normal(0, 0.001), average of the
per-segment class scores.
"""
import torch
import torch.nn as nn

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


class TSM(TSN):
    default_dropout = 0.5
    default_init_std = 0.001

    def __init__(self, depth=50, num_classes=400, in_channels=3, num_segments=8, dropout=None,
                 init_std=None, base_channels=64, shift_div=8):
        super().__init__(depth, num_classes, in_channels, num_segments, dropout, init_std, base_channels)
        if shift_div < 1:
            raise ValueError(f"shift_div must be >= 1, got {shift_div}")
        self.shifts = []  # plain list: the modules are registered inside the blocks
        for name in ("layer1", "layer2", "layer3", "layer4"):
            for block in getattr(self.backbone, name):
                block.shift = TemporalShift(num_segments, shift_div)
                self.shifts.append(block.shift)

    def forward(self, x):
        b, c, t, h, w = x.shape
        for s in self.shifts:
            s.num_segments = t
        x = x.transpose(1, 2).reshape(b * t, c, h, w)
        feats = self.avgpool(self.backbone(x)).flatten(1)
        scores = self.fc(self.dropout(feats))  # per-segment scores, then consensus (mmaction2 TSMHead)
        return scores.view(b, t, -1).mean(dim=1)
