"""Non-causal WaveNet stack: re-implements GPT-SoVITS ``module/modules.py::WN`` (weight-normed, gated, global cond)."""

from __future__ import annotations

import torch
from torch import nn

from mockvox.modules.commons import WNConv1d, fused_add_tanh_sigmoid_multiply, sequence_mask


class WN(nn.Module):
    """Gated residual/skip conv stack over ``[B, hidden, T]`` conditioned on ``g [B, gin, 1]``."""

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ):
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        if gin_channels != 0:
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = int((kernel_size * dilation - dilation) / 2)
            self.in_layers.append(
                WNConv1d(hidden_channels, 2 * hidden_channels, kernel_size, dilation=dilation, padding=padding)
            )
            res_skip = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WNConv1d(hidden_channels, res_skip, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        # x [B, H, T], x_mask [B, 1, T], g [B, gin, 1] -> [B, H, T]
        h = self.hidden_channels
        output = torch.zeros_like(x)
        if g is not None:
            g = self.cond_layer(g)  # [B, 2H * n_layers, 1]
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            x_in = in_layer(x)
            g_l = g[:, i * 2 * h : (i + 1) * 2 * h, :] if g is not None else torch.zeros_like(x_in)
            acts = self.drop(fused_add_tanh_sigmoid_multiply(x_in, g_l, h))
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :h, :]) * x_mask
                output = output + res_skip[:, h:, :]
            else:
                output = output + res_skip
        return output * x_mask


class PosteriorEncoder(nn.Module):
    """VITS posterior encoder (GPT-SoVITS ``PosteriorEncoder``): ``pre`` 1x1 -> WN -> ``proj`` to (m, logs)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ):
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        x: torch.Tensor,
        x_lengths: torch.Tensor,
        g: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, in, T]`` -> (z, m, logs ``[B, out, T]``, mask ``[B, 1, T]``); ``noise`` replaces the randn draw."""
        if g is not None:
            g = g.detach()
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        if noise is None:
            noise = torch.randn_like(m)
        z = (m + noise * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask
