"""Reference (style) encoder: re-implements GPT-SoVITS ``module/modules.py::MelStyleEncoder`` and its parts.

Same layer names (``spectral.0.fc``, ``temporal.0.conv1.conv``, ``slf_attn.w_qs`` ...) and the same quirks: the
attention temperature is ``sqrt(d_model)`` (not ``sqrt(d_k)``) and padded keys are masked with ``-inf``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class LinearNorm(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class ConvNorm(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__()
        padding = int(dilation * (kernel_size - 1) / 2)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    """Residual gated conv: ``x + a * sigmoid(b)`` with ``(a, b) = conv(x)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float):
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvNorm(in_channels, 2 * out_channels, kernel_size=kernel_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv1(x), self.out_channels, dim=1)
        return x + self.dropout(a * torch.sigmoid(b))


class StyleAttention(nn.Module):
    """Multi-head self-attention with residual (official ``modules.MultiHeadAttention``)."""

    def __init__(self, n_head: int, d_model: int, d_k: int, d_v: int, dropout: float = 0.0):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.temperature = math.sqrt(d_model)
        self.w_qs = nn.Linear(d_model, n_head * d_k)
        self.w_ks = nn.Linear(d_model, n_head * d_k)
        self.w_vs = nn.Linear(d_model, n_head * d_v)
        self.fc = nn.Linear(n_head * d_v, d_model)
        self.attn_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        # x [B, T, D]; key_padding [B, T] bool (True = padded key)
        b, t, _ = x.shape
        q = self.w_qs(x).view(b, t, self.n_head, self.d_k).transpose(1, 2)  # [B, H, T, dk]
        k = self.w_ks(x).view(b, t, self.n_head, self.d_k).transpose(1, 2)
        v = self.w_vs(x).view(b, t, self.n_head, self.d_v).transpose(1, 2)
        attn = torch.matmul(q, k.transpose(-2, -1)) / self.temperature  # [B, H, T, T]
        if key_padding is not None:
            attn = attn.masked_fill(key_padding[:, None, None, :], float("-inf"))
        attn = self.attn_dropout(F.softmax(attn, dim=-1))
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, self.n_head * self.d_v)
        return self.dropout(self.fc(out)) + x


class MelStyleEncoder(nn.Module):
    """Spectrogram frames ``[B, n_mel_channels, T]`` -> global style vector ``ge [B, style_vector_dim, 1]``."""

    def __init__(
        self,
        n_mel_channels: int = 80,
        style_hidden: int = 128,
        style_vector_dim: int = 256,
        style_kernel_size: int = 5,
        style_head: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        h = style_hidden
        self.spectral = nn.Sequential(
            LinearNorm(n_mel_channels, h), Mish(), nn.Dropout(dropout), LinearNorm(h, h), Mish(), nn.Dropout(dropout)
        )
        self.temporal = nn.Sequential(
            Conv1dGLU(h, h, style_kernel_size, dropout), Conv1dGLU(h, h, style_kernel_size, dropout)
        )
        self.slf_attn = StyleAttention(style_head, h, h // style_head, h // style_head, dropout)
        self.fc = LinearNorm(h, style_vector_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x [B, C, T], mask [B, 1, T] (1 = valid)
        padded = None if mask is None else (mask.int() == 0).squeeze(1)  # [B, T]
        x = self.spectral(x.transpose(1, 2))  # [B, T, h]
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        if padded is not None:
            x = x.masked_fill(padded.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, padded))  # [B, T, D]
        if padded is None:
            w = x.mean(dim=1)
        else:
            w = x.masked_fill(padded.unsqueeze(-1), 0).sum(dim=1) / (~padded).sum(dim=1).unsqueeze(1)
        return w.unsqueeze(-1)
