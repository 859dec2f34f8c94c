"""SoVITS v2 discriminator: re-implements GPT-SoVITS ``module/models.py::MultiPeriodDiscriminator`` (weight norm).

One scale discriminator (``DiscriminatorS``) plus one period discriminator per period (v2Pro and v2ProPlus add
periods 17 and 23); spectral norm is not implemented (the official configs use weight norm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.commons import LRELU_SLOPE, WNConv1d, WNConv2d, get_padding

V2_PERIODS = (2, 3, 5, 7, 11)
V2PRO_PERIODS = (2, 3, 5, 7, 11, 17, 23)
PERIODS = {"v2": V2_PERIODS, "v2Pro": V2PRO_PERIODS, "v2ProPlus": V2PRO_PERIODS}  # by SoVITS version


class DiscriminatorP(nn.Module):
    """Folds the waveform into ``[B, 1, T / period, period]`` and applies (k, 1) 2-d convs."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        pad = (get_padding(kernel_size, 1), 0)
        chans = [1, 32, 128, 512, 1024, 1024]
        strides = [stride, stride, stride, stride, 1]
        self.convs = nn.ModuleList(
            [
                WNConv2d(c_in, c_out, (kernel_size, 1), (s, 1), padding=pad)
                for c_in, c_out, s in zip(chans[:-1], chans[1:], strides, strict=True)
            ]
        )
        self.conv_post = WNConv2d(1024, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # x [B, 1, T] -> logits [B, n], feature maps
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorS(nn.Module):
    """Grouped strided 1-d convs on the raw waveform."""

    def __init__(self):
        super().__init__()
        # (in, out, kernel, stride, groups, padding)
        spec = [
            (1, 16, 15, 1, 1, 7),
            (16, 64, 41, 4, 4, 20),
            (64, 256, 41, 4, 16, 20),
            (256, 1024, 41, 4, 64, 20),
            (1024, 1024, 41, 4, 256, 20),
            (1024, 1024, 5, 1, 1, 2),
        ]
        self.convs = nn.ModuleList([WNConv1d(i, o, k, s, groups=g, padding=p) for i, o, k, s, g, p in spec])
        self.conv_post = WNConv1d(1024, 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """``discriminators.0`` = scale discriminator, ``discriminators.1..`` = period discriminators."""

    def __init__(self, periods: tuple[int, ...] = V2_PERIODS):
        super().__init__()
        self.discriminators = nn.ModuleList([DiscriminatorS()] + [DiscriminatorP(p) for p in periods])

    @classmethod
    def for_version(cls, version: str) -> MultiPeriodDiscriminator:
        """The official discriminator of a SoVITS version (v2: 6 sub-discriminators, v2Pro/v2ProPlus: 8)."""
        if version not in PERIODS:
            raise ValueError(f"no discriminator for SoVITS version {version!r}; accepted: {', '.join(PERIODS)}")
        return cls(PERIODS[version])

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """Real ``y`` and generated ``y_hat`` ``[B, 1, T]`` -> (logits_r, logits_g, fmaps_r, fmaps_g), one per sub-D."""
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for d in self.discriminators:
            y_d_r, fmap_r = d(y)
            y_d_g, fmap_g = d(y_hat)
            y_d_rs.append(y_d_r)
            y_d_gs.append(y_d_g)
            fmap_rs.append(fmap_r)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs
