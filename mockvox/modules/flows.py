"""SoVITS normalising flow: re-implements GPT-SoVITS ``ResidualCouplingBlock``, ``ResidualCouplingLayer``, ``Flip``."""

from __future__ import annotations

import torch
from torch import nn

from mockvox.modules.wavenet import WN


class Flip(nn.Module):
    """Reverse the channel order (its own inverse; no parameters)."""

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False):
        return torch.flip(x, [1])


class ResidualCouplingLayer(nn.Module):
    """Affine coupling: the second channel half is shifted (and scaled unless ``mean_only``) from the first half."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        p_dropout: float = 0.0,
        gin_channels: int = 0,
        mean_only: bool = False,
    ):
        super().__init__()
        assert channels % 2 == 0, "channels should be divisible by 2"
        self.half_channels = channels // 2
        self.mean_only = mean_only
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels, p_dropout)
        self.post = nn.Conv1d(hidden_channels, self.half_channels * (2 - mean_only), 1)
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False):
        # x [B, C, T] -> [B, C, T] (log-determinant is not returned: the SoVITS losses never use it)
        x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        stats = self.post(h) * x_mask
        if self.mean_only:
            m, logs = stats, None
        else:
            m, logs = torch.split(stats, [self.half_channels] * 2, 1)
        if not reverse:
            x1 = m + (x1 if logs is None else x1 * torch.exp(logs)) * x_mask
        else:
            x1 = (x1 - m) * (1 if logs is None else torch.exp(-logs)) * x_mask
        return torch.cat([x0, x1], 1)


class ResidualCouplingBlock(nn.Module):
    """``n_flows`` x (mean-only coupling, Flip); couplings sit at even indices ``flows.0, flows.2, ...``."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        n_flows: int = 4,
        gin_channels: int = 0,
    ):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                ResidualCouplingLayer(
                    channels,
                    hidden_channels,
                    kernel_size,
                    dilation_rate,
                    n_layers,
                    gin_channels=gin_channels,
                    mean_only=True,
                )
            )
            self.flows.append(Flip())

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        for flow in reversed(self.flows) if reverse else self.flows:
            x = flow(x, x_mask, g=g, reverse=reverse)
        return x
