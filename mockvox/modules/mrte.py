"""MRTE text/content fusion: re-implements GPT-SoVITS ``module/mrte_model.py::MRTE`` (sizes are parameters here)."""

from __future__ import annotations

import torch
from torch import nn

from mockvox.modules.attentions import MultiHeadAttention


class MRTE(nn.Module):
    """Cross-attention of content frames (queries) over phones (keys/values), plus content and global style.

    ``x = c_post(cross_attention(c_pre(ssl), text_pre(text)) + c_pre(ssl) + ge)``; ``ge`` must have
    ``hidden_size`` channels (official: 192 -> 512 with 4 heads).
    """

    def __init__(
        self, content_enc_channels: int = 192, hidden_size: int = 512, out_channels: int = 192, n_heads: int = 4
    ):
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden_size, hidden_size, n_heads)
        self.c_pre = nn.Conv1d(content_enc_channels, hidden_size, 1)
        self.text_pre = nn.Conv1d(content_enc_channels, hidden_size, 1)
        self.c_post = nn.Conv1d(hidden_size, out_channels, 1)

    def forward(
        self,
        ssl_enc: torch.Tensor,
        ssl_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        ge: torch.Tensor | None,
    ) -> torch.Tensor:
        # ssl_enc [B, C, T] / ssl_mask [B, 1, T]; text [B, C, N] / text_mask [B, 1, N]; ge [B, H, 1]
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # [B, 1, T, N]
        ssl_enc = self.c_pre(ssl_enc * ssl_mask)
        text_enc = self.text_pre(text * text_mask)
        x = self.cross_attention(ssl_enc * ssl_mask, text_enc * text_mask, attn_mask) + ssl_enc
        if ge is not None:
            x = x + ge
        return self.c_post(x * ssl_mask)  # [B, out, T]
