"""SoVITS prior text encoder: re-implements GPT-SoVITS ``module/models.py::TextEncoder`` (v2/v3/v4 ``enc_p``).

SSL content frames and phones are encoded separately, fused by MRTE with the global style ``ge``, re-encoded and
projected to the prior ``(m_p, logs_p)``. Differences: MRTE and vocabulary sizes are parameters (official hard-codes
192/512 and the v2 symbol table).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.attentions import Encoder
from mockvox.modules.commons import sequence_mask
from mockvox.modules.mrte import MRTE

V2_SYMBOLS = 732  # len(symbols2.symbols)


class TextEncoder(nn.Module):
    def __init__(
        self,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        ssl_dim: int = 768,
        n_symbols: int = V2_SYMBOLS,
        mrte_hidden: int = 512,
        mrte_heads: int = 4,
    ):
        super().__init__()
        self.out_channels = out_channels
        self.ssl_proj = nn.Conv1d(ssl_dim, hidden_channels, 1)
        self.encoder_ssl = Encoder(hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout)
        self.encoder_text = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        self.text_embedding = nn.Embedding(n_symbols, hidden_channels)
        self.mrte = MRTE(hidden_channels, mrte_hidden, hidden_channels, mrte_heads)
        self.encoder2 = Encoder(hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        y: torch.Tensor,
        y_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        ge: torch.Tensor | None,
        speed: float = 1.0,
        fixed_grid: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """SSL frames ``y [B, ssl_dim, T]``, phone ids ``text [B, N]``, style ``ge [B, mrte_hidden, 1]``.

        Returns (hidden ``[B, H, T']``, m_p ``[B, out, T']``, logs_p ``[B, out, T']``, mask ``[B, 1, T']``) with
        ``T' = T`` at speed 1, else ``int(T / speed) + 1`` (linear time interpolation). The official interpolation
        spaces the output frames ``T / T'`` apart; ``fixed_grid`` spaces them exactly ``speed`` apart, so that the
        frames of a prefix of ``y`` are those of the whole (streaming decodes prefixes).
        """
        y_mask = sequence_mask(y_lengths, y.size(2)).unsqueeze(1).to(y.dtype)
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        text_mask = sequence_mask(text_lengths, text.size(1)).unsqueeze(1).to(y.dtype)
        text = self.text_embedding(text).transpose(1, 2)  # [B, H, N]
        text = self.encoder_text(text * text_mask, text_mask)
        y = self.mrte(y, y_mask, text, text_mask, ge)
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            size = int(y.shape[-1] / speed) + 1
            y = fixed_grid_interpolate(y, speed, size) if fixed_grid else F.interpolate(y, size=size, mode="linear")
            y_mask = F.interpolate(y_mask, size=y.shape[-1], mode="nearest")
        stats = self.proj(y) * y_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return y, m, logs, y_mask


def fixed_grid_interpolate(y: torch.Tensor, step: float, size: int) -> torch.Tensor:
    """Linear interpolation of ``y [B, C, T]`` at positions ``(j + 0.5) step - 0.5`` (clamped to the frames),
    ``j < size``: ``F.interpolate``'s sampling with a fixed step instead of ``T / size``."""
    t = y.shape[-1]
    pos = ((torch.arange(size, device=y.device, dtype=torch.float64) + 0.5) * step - 0.5).clamp(0, t - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo).to(y.dtype)
    return y[..., lo] * (1 - w) + y[..., hi] * w
