"""DiT velocity estimator of SoVITS v4 (GPT-SoVITS ``f5_tts/model/backbones/dit.py`` + ``modules.py``).

Same parameter names, shapes and computation as the official block. Differences: every size is a parameter, the
rotary embedding is built in (x_transformers' interleaved-pair convention, applied to the first ``dim_head``
channels of the q/k projections before the head split), and everything that does not depend on the noisy input or
the time step (text embedding, step-size embedding, the cond/text part of the input projection, RoPE tables,
masks) is computed once per sampling run in a :class:`DiTConditioning` and re-used at every Euler step.
Speed (inference on CPU): oneDNN linear with bias/tanh-GELU fused, LayerNorm modulation and gated residuals as single
``addcmul`` passes, RoPE written in place, no attention mask when no item is padded, and the whole DiT may be cast to
bfloat16 (time and RoPE angles stay in fp32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mockvox.modules.adapters import LoraLinear
from mockvox.precision import note_plain_bf16_fallback, onednn_bf16

_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn_ok(layer: nn.Module, x: Tensor) -> bool:
    w = layer.weight
    return (
        _ONEDNN
        and type(layer) is nn.Linear  # not a LoRA-wrapped layer
        and layer.bias is not None
        and x.device.type == "cpu"
        and x.dtype == w.dtype
        and (w.dtype == torch.float32 or (w.dtype == torch.bfloat16 and _bf16_kernels()))
        and not (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))
    )


def _bf16_kernels() -> bool:
    if onednn_bf16():
        return True
    note_plain_bf16_fallback()
    return False


def _bf16_packed(layer: nn.Linear) -> Tensor:
    """oneDNN-blocked copy of a bf16 weight, cached on the layer (rebuilt when the weight changes)."""
    w = layer.weight
    key = (w.data_ptr(), -1 if w.is_inference() else w._version)
    cached = layer.__dict__.get("_onednn_packed")
    if cached is None or cached[0] != key:
        cached = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), 1))
        layer.__dict__["_onednn_packed"] = cached
    return cached[1]


def linear(layer: nn.Linear, x: Tensor, gelu: bool = False) -> Tensor:
    """``layer(x)`` (then tanh-GELU if asked). Inference on CPU runs oneDNN's linear with the bias and GELU fused
    (one pass over the output instead of three); training, peft-wrapped layers and other devices use ``F.linear``.
    An unmerged :class:`LoraLinear` runs its (shared) base layer this way and adds its low-rank term."""
    if isinstance(layer, LoraLinear):
        y = linear(layer.base, x) + layer.delta(x)
        return F.gelu(y, approximate="tanh") if gelu else y
    if _onednn_ok(layer, x):
        w = _bf16_packed(layer) if x.dtype == torch.bfloat16 else layer.weight
        attr, alg = ("gelu", "tanh") if gelu else ("none", "")
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w, layer.bias, attr, [], alg)
    y = layer(x)
    return F.gelu(y, approximate="tanh") if gelu else y


def sequence_mask(lengths: Tensor, max_length: int) -> Tensor:
    """Boolean ``[B, T]`` mask, True on the first ``lengths[b]`` frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_embedding(x: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """``[B] -> [B, dim]``: ``[sin(scale*x*w_i) | cos(scale*x*w_i)]`` with ``w_i = 10000^(-i/(dim/2-1))``."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=x.device).float() * -(math.log(10000) / (half - 1)))
    angles = scale * x.unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def text_position_table(dim: int, length: int, theta: float = 10000.0) -> Tensor:
    """``[length, dim]`` absolute table ``[cos(p*f_i) | sin(p*f_i)]``, ``f_i = theta^(-2i/dim)``."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(length).float(), freqs)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepEmbedding(nn.Module):
    """Scalar (time or step size) -> sinusoidal(freq_dim) -> Linear -> SiLU -> Linear."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:  # [B] -> [B, dim]
        # angles in fp32 even for a reduced-precision model (1000 t w_i reaches 1000 rad)
        return self.time_mlp(sinusoidal_embedding(t.float(), self.freq_dim).to(self.time_mlp[0].weight.dtype))


class GRN(nn.Module):
    """ConvNeXt-V2 global response normalisation; the L2 norm runs over the time axis of ``[B, T, C]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:  # [B, T, C]
        gx = torch.norm(x, p=2, dim=1, keepdim=True)  # [B, 1, C]
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int, hidden: int, kernel_size: int = 7):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden)
        self.pwconv2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:  # [B, T, C]
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(h)))))
        return x + h


class TextEmbedding(nn.Module):
    """Conditioning features + absolute sinusoidal positions, then ``conv_layers`` ConvNeXt-V2 blocks."""

    def __init__(self, text_dim: int, conv_layers: int, conv_mult: int = 2, max_pos: int = 4096):
        super().__init__()
        self.max_pos = max_pos
        self.register_buffer("freqs_cis", text_position_table(text_dim, max_pos), persistent=False)
        self.text_blocks = nn.Sequential(*[ConvNeXtV2Block(text_dim, text_dim * conv_mult) for _ in range(conv_layers)])

    def forward(self, text: Tensor, drop_text: bool = False) -> Tensor:  # [B, T, C] -> [B, T, C]
        if drop_text:
            text = torch.zeros_like(text)
        pos = torch.arange(text.shape[1], device=text.device).clamp(max=self.max_pos - 1)
        return self.text_blocks(text + self.freqs_cis[pos])


class ConvPositionEmbedding(nn.Module):
    def __init__(self, dim: int, kernel_size: int = 31, groups: int = 16):
        super().__init__()
        pad = kernel_size // 2
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:  # [B, T, D] (no mask, as the official)
        return self.conv1d(x.transpose(1, 2)).transpose(1, 2)


class InputEmbedding(nn.Module):
    """``Linear(cat[x, cond, text])`` + residual convolutional position embedding."""

    def __init__(self, mel_dim: int, text_dim: int, out_dim: int):
        super().__init__()
        self.mel_dim = mel_dim
        self.proj = nn.Linear(mel_dim * 2 + text_dim, out_dim)
        self.conv_pos_embed = ConvPositionEmbedding(out_dim)

    def static_part(self, cond: Tensor, text_embed: Tensor) -> Tensor:
        """Projection of the step-invariant inputs (+ bias): ``[B, T, D]``."""
        return F.linear(torch.cat((cond, text_embed), dim=-1), self.proj.weight[:, self.mel_dim :], self.proj.bias)

    def forward(self, x: Tensor, static: Tensor) -> Tensor:  # x [B, T, mel], static [B, T, D] -> [B, T, D]
        h = static + F.linear(x, self.proj.weight[:, : self.mel_dim])
        return self.conv_pos_embed(h) + h


class RotaryEmbedding(nn.Module):
    """x_transformers ``RotaryEmbedding(dim)``: angle of channel pair j at position p is ``p * inv_freq[j]``."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        self.dim, self.base = dim, base
        self.register_buffer("inv_freq", self._inv_freq())

    def _inv_freq(self, device: torch.device | None = None) -> Tensor:
        return 1.0 / (self.base ** (torch.arange(0, self.dim, 2, device=device).float() / self.dim))

    def forward(self, seq_len: int) -> tuple[Tensor, Tensor]:
        """fp32 cos, sin tables ``[T, dim]``, each angle repeated for the two channels of its pair."""
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32:  # model cast to reduced precision: rebuild the constant in fp32
            inv_freq = self._inv_freq(inv_freq.device)
        pos = torch.arange(seq_len, device=inv_freq.device).float()
        angles = torch.einsum("i,j->ij", pos, inv_freq).repeat_interleave(2, dim=-1)
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first ``cos.shape[-1]`` channels of ``x [B, T, C]`` in interleaved pairs (x0,x1)->(-x1,x0)."""
    rot = cos.shape[-1]
    return torch.cat((_rotate(x[..., :rot], cos, sin), x[..., rot:]), dim=-1)


def _rotate(xr: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    pairs = xr.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return (xr * cos + rotated * sin).to(xr.dtype)


def _rotary_inplace(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """:func:`apply_rotary` writing into ``x`` (a fresh projection output): no copy of the untouched channels."""
    rot = cos.shape[-1]
    x[..., :rot] = _rotate(x[..., :rot], cos, sin)
    return x


def modulate(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``LayerNorm(x, no affine, eps 1e-6) * (1 + scale) + shift`` with ``scale``/``shift [B, D]``."""
    return torch.addcmul(shift[:, None], F.layer_norm(x, x.shape[-1:], eps=1e-6), 1 + scale[:, None])


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], attn_mask: Tensor | None, row_mask: Tensor | None):
        b, t, _ = x.shape
        q = _rotary_inplace(linear(self.to_q, x), *rope)  # [B, T, H*Dh], RoPE on channels [0, Dh) before heads
        k = _rotary_inplace(linear(self.to_k, x), *rope)
        v = linear(self.to_v, x)
        q, k, v = (z.view(b, t, self.heads, self.dim_head).transpose(1, 2) for z in (q, k, v))  # [B, H, T, Dh]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.to_out[1](linear(self.to_out[0], out.transpose(1, 2).reshape(b, t, -1)))
        return out if row_mask is None else out.masked_fill(~row_mask, 0.0)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: float, dropout: float = 0.0):
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(
            nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")),
            nn.Dropout(dropout),
            nn.Linear(inner, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return self.ff(x)
        return linear(self.ff[2], linear(self.ff[0][0], x, gelu=True))


class AdaLayerNormZero(nn.Module):
    """SiLU(t) -> Linear -> (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim * 6)

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, ...]:
        shift, scale, gate, shift_mlp, scale_mlp, gate_mlp = self.linear(F.silu(emb)).chunk(6, dim=1)
        return modulate(x, scale, shift), gate, shift_mlp, scale_mlp, gate_mlp


class AdaLayerNormZeroFinal(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim * 2)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.linear(F.silu(emb)).chunk(2, dim=1)
        return modulate(x, scale, shift)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: float, dropout: float):
        super().__init__()
        self.attn_norm = AdaLayerNormZero(dim)
        self.attn = Attention(dim, heads, dim_head, dropout)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x: Tensor, t: Tensor, rope, attn_mask: Tensor | None, row_mask: Tensor | None) -> Tensor:
        h, gate, shift_mlp, scale_mlp, gate_mlp = self.attn_norm(x, t)
        x = torch.addcmul(x, gate.unsqueeze(1), self.attn(h, rope, attn_mask, row_mask))
        return torch.addcmul(x, gate_mlp.unsqueeze(1), self.ff(modulate(x, scale_mlp, shift_mlp)))


@dataclass
class DiTConditioning:
    """Everything of one DiT call that stays fixed across the Euler steps of a sampling run."""

    text_embed: Tensor  # [B, T, text_dim]
    dt_embed: Tensor  # [B, dim]
    static_input: Tensor  # [B, T, dim]
    rope: tuple[Tensor, Tensor]  # cos, sin [T, dim_head]
    attn_mask: Tensor | None  # [B, 1, 1, T] bool, None when no item is padded
    row_mask: Tensor | None  # [B, T, 1] bool


class DiT(nn.Module):
    """Velocity estimator ``v(x_t, t | cond mel, conditioning features, step size)``; defaults are SoVITS v4's."""

    def __init__(
        self,
        dim: int = 1024,
        depth: int = 22,
        heads: int = 16,
        dim_head: int = 64,
        ff_mult: float = 2,
        mel_dim: int = 100,
        text_dim: int = 512,
        conv_layers: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.dim, self.mel_dim = dim, mel_dim
        self.time_embed = TimestepEmbedding(dim)
        self.d_embed = TimestepEmbedding(dim)
        self.text_embed = TextEmbedding(text_dim, conv_layers)
        self.input_embed = InputEmbedding(mel_dim, text_dim, dim)
        self.rotary_embed = RotaryEmbedding(dim_head)
        self.transformer_blocks = nn.ModuleList(
            [DiTBlock(dim, heads, dim_head, ff_mult, dropout) for _ in range(depth)]
        )
        self.norm_out = AdaLayerNormZeroFinal(dim)
        self.proj_out = nn.Linear(dim, mel_dim)
        self.grad_checkpointing = False

    def condition(
        self,
        cond: Tensor,
        x_lens: Tensor,
        dt: Tensor,
        text: Tensor,
        drop_audio_cond: bool = False,
        drop_text: bool = False,
        text_embed: Tensor | None = None,
        dt_embed: Tensor | None = None,
    ) -> DiTConditioning:
        """Step-invariant part. cond [B, mel, T], x_lens [B], dt [B], text [B, text_dim, T] (official layout)."""
        cond, text = cond.transpose(1, 2), text.transpose(1, 2)  # [B, T, C]
        b, t = cond.shape[:2]
        if text_embed is None:
            text_embed = self.text_embed(text, drop_text=drop_text)
        if dt_embed is None:
            dt_embed = self.d_embed(dt)
        if drop_audio_cond:
            cond = torch.zeros_like(cond)
        static = self.input_embed.static_part(cond, text_embed)
        cos, sin = self.rotary_embed(t)
        mask = sequence_mask(x_lens.to(cond.device), t)  # [B, T]
        padded = bool((~mask).any())
        attn_mask = mask[:, None, None, :] if padded else None
        row_mask = mask[:, :, None] if padded else None
        return DiTConditioning(
            text_embed, dt_embed, static, (cos.to(cond.dtype), sin.to(cond.dtype)), attn_mask, row_mask
        )

    def velocity(self, x: Tensor, time: Tensor, c: DiTConditioning) -> Tensor:
        """x [B, mel, T], time [B] -> v [B, T, mel]."""
        if time.ndim == 0:
            time = time.repeat(x.shape[0])
        t = self.time_embed(time) + c.dt_embed  # [B, dim]
        h = self.input_embed(x.transpose(1, 2), c.static_input)  # [B, T, dim]
        for block in self.transformer_blocks:
            if self.grad_checkpointing and self.training:
                h = checkpoint(block, h, t, c.rope, c.attn_mask, c.row_mask, use_reentrant=False)
            else:
                h = block(h, t, c.rope, c.attn_mask, c.row_mask)
        return linear(self.proj_out, self.norm_out(h, t))

    def forward(
        self,
        x: Tensor,
        cond: Tensor,
        x_lens: Tensor,
        time: Tensor,
        dt: Tensor,
        text: Tensor,
        drop_audio_cond: bool = False,
        drop_text: bool = False,
    ) -> Tensor:
        """Official call: x, cond [B, mel, T], text [B, text_dim, T] -> v [B, T, mel]."""
        return self.velocity(x, time, self.condition(cond, x_lens, dt, text, drop_audio_cond, drop_text))
