"""Weight initialisation shared by the ResNet-family models (as mmaction2 initialises them)."""
import torch.nn as nn


def init_backbone(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) for convs, BN weight 1 / bias 0 (mmcv kaiming_init / constant_init).

    mmaction2's TSN/TSM 2D ResNet and the I3D config (zero_init_residual=False) do not zero the last BN of
    the residual branch, so neither do we.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_fc(fc: nn.Module, std: float) -> None:
    """Classifier init of the reference heads: normal(0, std) weight, zero bias."""
    nn.init.normal_(fc.weight, mean=0.0, std=std)
    if fc.bias is not None:
        nn.init.zeros_(fc.bias)
