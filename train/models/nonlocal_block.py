"""Non-local block (Wang et al. 2018, "Non-local Neural Networks"), 3D, as configured by mmaction2's I3D-NL recipes.

y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j);  z = x + BN(W y)   (W: 1x1x1 conv, BN weight zero-initialised so
the block starts as the identity, as the paper recommends).

Modes (pairwise f):
  embedded_gaussian  softmax_j(theta(x_i) . phi(x_j))          (theta/phi: 1x1x1 convs to C/2)
  gaussian           softmax_j(x_i . x_j)                         (no theta/phi parameters)
  dot_product        theta(x_i) . phi(x_j) / N                    (N = number of positions j)
sub_sample: a (1, 2, 2) max pool after g and phi (fewer positions j).  use_scale divides the embedded
gaussian logits by sqrt(C/2); mmaction2's I3D-NL recipes set use_scale=False.
"""
import torch
import torch.nn as nn

MODES = ("embedded_gaussian", "gaussian", "dot_product")


class NonLocalBlock3d(nn.Module):
    def __init__(self, in_channels, mode="embedded_gaussian", reduction=2, sub_sample=True,
                 use_scale=False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown non-local mode {mode!r}; valid: {list(MODES)}")
        self.mode = mode
        self.use_scale = use_scale
        self.inter_channels = max(in_channels // reduction, 1)
        self.g = nn.Conv3d(in_channels, self.inter_channels, 1)
        if mode != "gaussian":  # gaussian compares the raw features: no embeddings
            self.theta = nn.Conv3d(in_channels, self.inter_channels, 1)
            self.phi = nn.Conv3d(in_channels, self.inter_channels, 1)
        self.pool = nn.MaxPool3d((1, 2, 2)) if sub_sample else nn.Identity()
        self.W = nn.Conv3d(self.inter_channels, in_channels, 1, bias=False)
        self.bn = nn.BatchNorm3d(in_channels)
        self.init_weights()

    def init_weights(self, std=0.01):
        convs = [self.g] + ([self.theta, self.phi] if self.mode != "gaussian" else [])
        for m in convs:
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.W.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.bn.weight)  # block = identity at the start
        nn.init.zeros_(self.bn.bias)

    def forward(self, x):
        n, c = x.shape[:2]
        g_x = self.pool(self.g(x)).flatten(2).transpose(1, 2)          # (n, Nj, c')
        if self.mode == "gaussian":
            theta_x = x.flatten(2).transpose(1, 2)                       # (n, Ni, c)
            phi_x = self.pool(x).flatten(2)                              # (n, c, Nj)
        else:
            theta_x = self.theta(x).flatten(2).transpose(1, 2)           # (n, Ni, c')
            phi_x = self.pool(self.phi(x)).flatten(2)                    # (n, c', Nj)
        f = torch.matmul(theta_x, phi_x)                                 # (n, Ni, Nj)
        if self.mode == "dot_product":
            f = f / f.shape[-1]
        else:
            if self.use_scale and self.mode == "embedded_gaussian":
                f = f / theta_x.shape[-1] ** 0.5
            f = f.softmax(dim=-1)
        y = torch.matmul(f, g_x).transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.bn(self.W(y))
