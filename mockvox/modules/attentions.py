"""VITS transformer encoder: re-implements GPT-SoVITS ``module/attentions.py`` (Encoder, MultiHeadAttention, FFN).

Post-LN layers of relative-position self-attention (shared key/value tables over offsets ``-window..window``) and a
convolutional FFN. The relative terms are computed on the ``2 * window + 1`` band directly instead of the official
pad/reshape of a ``2T - 1`` table; offsets outside the band contribute exactly zero in both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.commons import LayerNorm

MASK_VALUE = -1e4  # official masked_fill value before the softmax


class MultiHeadAttention(nn.Module):
    """Multi-head attention over channel-first sequences with 1x1-conv projections (``conv_q/k/v/o``).

    ``window_size`` enables the relative-position tables ``emb_rel_k``/``emb_rel_v`` ``[1, 2w+1, C/heads]``.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
    ):
        super().__init__()
        assert channels % n_heads == 0, f"channels {channels} must be divisible by n_heads {n_heads}"
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        nn.init.xavier_uniform_(self.conv_q.weight)
        nn.init.xavier_uniform_(self.conv_k.weight)
        nn.init.xavier_uniform_(self.conv_v.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        # x [B, C, Tq] queries, c [B, C, Tk] keys/values, attn_mask [B, 1, Tq, Tk] (0 = blocked)
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        return self.conv_o(self._attention(q, k, v, attn_mask))

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)  # [B, H, T, d]

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, d, t_q = q.shape
        q = self._split_heads(q) / math.sqrt(self.k_channels)
        k, v = self._split_heads(k), self._split_heads(v)
        scores = torch.matmul(q, k.transpose(-2, -1))  # [B, H, Tq, Tk]
        if self.window_size is not None:
            assert t_q == k.size(2), "relative attention is self-attention only"
            idx, band = self._band_index(t_q, q.device)
            rel_logits = torch.matmul(q, self.emb_rel_k[0].transpose(0, 1))  # [B, H, T, 2w+1]
            local = torch.gather(rel_logits, -1, idx.expand(b, self.n_heads, t_q, t_q))
            scores = scores + local * band.to(local.dtype)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, MASK_VALUE)
        p_attn = self.drop(F.softmax(scores, dim=-1))
        out = torch.matmul(p_attn, v)  # [B, H, Tq, d]
        if self.window_size is not None:
            out = out + torch.matmul(self._relative_weights(p_attn), self.emb_rel_v[0])
        return out.transpose(2, 3).reshape(b, d, t_q)

    def _band_index(self, t: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # offset j - i of each (query i, key j) pair as an index into the 2w+1 table, and the in-band mask
        w = self.window_size
        offset = torch.arange(t, device=device).unsqueeze(0) - torch.arange(t, device=device).unsqueeze(1)
        return (offset.clamp(-w, w) + w).view(1, 1, t, t), (offset.abs() <= w).view(1, 1, t, t)

    def _relative_weights(self, p_attn: torch.Tensor) -> torch.Tensor:
        # [B, H, T, T] -> [B, H, T, 2w+1]: weight of key i + m - w for query i (0 outside the sequence)
        b, h, t, _ = p_attn.shape
        w = self.window_size
        padded = F.pad(p_attn, (w, w))  # [B, H, T, T + 2w]
        idx = torch.arange(t, device=p_attn.device).view(t, 1) + torch.arange(2 * w + 1, device=p_attn.device)
        return torch.gather(padded, -1, idx.view(1, 1, t, 2 * w + 1).expand(b, h, t, 2 * w + 1))


class FFN(nn.Module):
    """Conv FFN: ``conv_2(relu(conv_1(x * mask)) * mask) * mask`` with 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self.pad)))
        x = self.conv_2(F.pad(self.drop(x) * x_mask, self.pad))
        return x * x_mask


class Encoder(nn.Module):
    """Post-LN relative-position transformer encoder over ``[B, C, T]`` with mask ``[B, 1, T]``."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 4,
    ):
        super().__init__()
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(n_layers):
            self.attn_layers.append(
                MultiHeadAttention(hidden_channels, hidden_channels, n_heads, p_dropout, window_size=window_size)
            )
            self.norm_layers_1.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, p_dropout))
            self.norm_layers_2.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # [B, 1, T, T]
        x = x * x_mask
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + self.drop(attn(x, x, attn_mask)))
            x = norm_2(x + self.drop(ffn(x, x_mask)))
        return x * x_mask
