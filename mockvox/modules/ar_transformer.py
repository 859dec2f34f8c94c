"""Re-implements GPT-SoVITS AR blocks (AR/modules/embedding.py, transformer.py, the T2SBlock KV-cache path).

Differences: one module serves training (additive or boolean mask, dropout) and cached decoding; the KV cache is
preallocated and grown in chunks instead of concatenated every step; attention always goes through SDPA.
Parameter names match the official ones (``word_embeddings``, ``alpha``, ``self_attn.in_proj_weight`` ...).
"""

from __future__ import annotations

import logging
import math
import os
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.packed import Int8Dynamic, Int8Pack, OneDNNBf16
from mockvox.precision import int8_kernel, note_plain_bf16_fallback, onednn_bf16

log = logging.getLogger(__name__)


def _pack(weight: torch.Tensor, bias: torch.Tensor | None, int8: bool = False):
    """Inference copy of a CPU weight: int8 (see :func:`int8_kernel`), oneDNN-packed bf16, or None (plain)."""
    if weight.device.type != "cpu":
        return None
    try:
        if int8:
            kernel = int8_kernel()
            if kernel == "fbgemm":
                return Int8Dynamic(weight, bias)
            return Int8Pack(weight) if kernel == "int8pack" else None
        if weight.dtype != torch.bfloat16:
            return None
        if not onednn_bf16():
            note_plain_bf16_fallback()
            return None
        return OneDNNBf16(weight)
    except (RuntimeError, AttributeError):
        return None


def _column_major(param: nn.Parameter) -> None:
    """Store a CPU fp32 matrix column-major (same logical shape): MKL's GEMV reads it ~1.7x faster."""
    if param.device.type == "cpu" and param.dtype == torch.float32 and param.is_contiguous():
        param.data = param.data.t().contiguous().t()


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, packed) -> torch.Tensor:
    return F.linear(x, weight, bias) if packed is None else packed(x, bias)


def _step_body(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    n: int,
    heads: int,
    eps: float,
    tensors: list[torch.Tensor],
    packed: list[torch.classes.quantized.LinearPackedParamsBase],
) -> torch.Tensor:
    """:meth:`ARTransformer.step` for TorchScript: no Python between the ops (1.2x faster fp32, 1.7x int8 on 2 cores).

    Per layer ``tensors`` holds the two norms (weight, bias) and, without ``packed``, the four linears (weight,
    bias); with ``packed`` the linears are FBGEMM int8 weights in the order qkv, out, ffn1, ffn2.
    """
    b, c = x.shape[0], x.shape[-1]
    int8 = len(packed) > 0
    per = 4 if int8 else 12
    for i in range(len(keys)):
        t = tensors[i * per : (i + 1) * per]
        if int8:
            qkv = torch.ops.quantized.linear_dynamic(x, packed[4 * i], True)
        else:
            qkv = F.linear(x, t[4], t[5])
        qkv = qkv.view(b, 3, heads, 1, c // heads)
        k, v = keys[i], values[i]
        k[:, :, n : n + 1] = qkv[:, 1]
        v[:, :, n : n + 1] = qkv[:, 2]
        q = qkv[:, 0].to(k.dtype)  # the cache may be bf16 under fp32 activations (int8 decoding)
        o = F.scaled_dot_product_attention(q, k[:, :, : n + 1], v[:, :, : n + 1], attn_mask=mask)
        o = o.to(x.dtype).view(b, 1, c)
        if int8:
            o = torch.ops.quantized.linear_dynamic(o, packed[4 * i + 1], True)
        else:
            o = F.linear(o, t[6], t[7])
        x = F.layer_norm(x + o, [c], t[0], t[1], eps)
        if int8:
            h = torch.ops.quantized.linear_relu_dynamic(x, packed[4 * i + 2], True)
            h = torch.ops.quantized.linear_dynamic(h, packed[4 * i + 3], True)
        else:
            h = F.linear(F.linear(x, t[8], t[9]).relu_(), t[10], t[11])
        x = F.layer_norm(x + h, [c], t[2], t[3], eps)
    return x


@cache
def _compiled_step():
    try:
        return torch.jit.script(_step_body)
    except Exception as err:  # noqa: BLE001 - TorchScript missing or refusing: the Python loop does the same work
        log.warning("GPT decoding step not scripted (%s): the Python loop is used", err)
        return None


def scripted_step():
    """The TorchScript decoding step, or None: ``MOCKVOX_GPT_STEP=eager`` asks for the Python loop (the tests force
    it to compare both), and a torch without TorchScript gets it too."""
    if os.environ.get("MOCKVOX_GPT_STEP", "script").strip().lower() == "eager":
        return None
    return _compiled_step()


def _prepare(weight: nn.Parameter, bias: torch.Tensor | None, int8: bool):
    packed = _pack(weight, bias, int8)
    if packed is None:
        _column_major(weight)
    return packed


class Linear(nn.Linear):
    """``nn.Linear`` that can hold an inference-only packed copy of its weight (see ``prepare_inference``)."""

    packed = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(x, self.weight, self.bias, None if self.training else self.packed)

    def prepare_inference(self, int8: bool = False) -> None:
        self.packed = _prepare(self.weight, self.bias, int8)

    def release_inference(self) -> None:
        self.packed = None


class TokenEmbedding(nn.Module):
    """Embedding table stored as ``word_embeddings`` followed by dropout."""

    def __init__(self, dim: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.word_embeddings(ids))


def sine_table(length: int, dim: int) -> torch.Tensor:
    """Sin/cos table [length, dim]: even channels sin(p*d_i), odd channels cos(p*d_i), d_i = 10000^(-2i/dim)."""
    position = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class SinePositionalEmbedding(nn.Module):
    """``x + alpha * pe[:T]`` with a learnable scalar ``alpha``; positions start at 0 for every stream."""

    def __init__(self, dim: int, dropout: float = 0.0, initial_length: int = 4000):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sine_table(initial_length, dim), persistent=False)

    def table(self, length: int) -> torch.Tensor:
        """Positional table with at least ``length`` rows, in the dtype/device of ``alpha``."""
        if self.pe.shape[0] < length or self.pe.dtype != self.alpha.dtype:
            with torch.inference_mode(False):  # a table built while decoding must stay usable for training
                n = self.pe.shape[0] if length <= self.pe.shape[0] else max(length, 2 * self.pe.shape[0])
                self.pe = sine_table(n, self.dim).to(self.alpha.device, self.alpha.dtype)
        return self.pe

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        # x: [B, T, C]
        pe = self.table(offset + x.shape[1])[offset : offset + x.shape[1]]
        return self.dropout(x + self.alpha * pe)


class KVCache:
    """Per-layer key/value buffers [B, H, capacity, D], grown in chunks; ``length`` positions are filled."""

    def __init__(self, num_layers: int, batch: int, heads: int, head_dim: int, capacity: int, like: torch.Tensor):
        shape = (batch, heads, capacity, head_dim)
        self.k = [like.new_empty(shape) for _ in range(num_layers)]
        self.v = [like.new_empty(shape) for _ in range(num_layers)]
        self.length = 0
        self.chunk = 256

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    def ensure(self, length: int) -> None:
        """Make room for ``length`` positions (copying the filled part into larger buffers when needed)."""
        if length <= self.capacity:
            return
        new_cap = length + self.chunk
        for store in (self.k, self.v):
            for i, buf in enumerate(store):
                grown = buf.new_empty((*buf.shape[:2], new_cap, buf.shape[3]))
                grown[:, :, : self.length] = buf[:, :, : self.length]
                store[i] = grown

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (finished sequences are dropped)."""
        for store in (self.k, self.v):
            for i, buf in enumerate(store):
                store[i] = buf.index_select(0, rows)


class PackedSelfAttention(nn.Module):
    """Multi-head self-attention with packed q|k|v projection (``in_proj_weight`` [3C, C]) and ``out_proj``."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = Linear(dim, dim)
        self.packed_in = None
        nn.init.xavier_uniform_(self.in_proj_weight)

    def prepare_inference(self, int8: bool = False) -> None:
        self.packed_in = _prepare(self.in_proj_weight, self.in_proj_bias, int8)

    def release_inference(self) -> None:
        self.packed_in = None

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.head_dim).transpose(1, 2)  # [B, H, T, D]

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """Attend ``x`` [B, T, C] over itself, or over the cache when one is given.

        ``mask`` follows SDPA: boolean True = may attend, or an additive float mask; broadcast to [B, H, T, S].
        With a cache, the new keys/values are written at ``cache.length`` and attention covers all filled positions.
        """
        b, t, c = x.shape
        packed = None if self.training else self.packed_in
        q, k, v = _linear(x, self.in_proj_weight, self.in_proj_bias, packed).chunk(3, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start : start + t] = k
            cache.v[layer][:, :, start : start + t] = v
            k = cache.k[layer][:, :, : start + t]
            v = cache.v[layer][:, :, : start + t]
        p = self.dropout if self.training else 0.0
        if k.dtype != q.dtype:  # a bf16 cache under fp32 activations (int8 decoding)
            q = q.to(k.dtype)
            mask = mask if mask is None or mask.dtype == torch.bool else mask.to(k.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p).to(x.dtype)
        out = out.transpose(1, 2).reshape(b, t, c)
        return self.out_proj(out)


class ARTransformerLayer(nn.Module):
    """Post-LN encoder layer: ``h = LN1(h + Attn(h)); h = LN2(h + W2 relu(W1 h))``."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.self_attn = PackedSelfAttention(dim, heads, dropout)
        self.linear1 = Linear(dim, ffn_dim)
        self.linear2 = Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x, mask, cache, layer)))
        ff = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ff))


def layer_step(
    layer: ARTransformerLayer,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    keys: torch.Tensor,
    values: torch.Tensor,
    at: int | torch.Tensor,
    length: int,
) -> torch.Tensor:
    """One layer of the decoding step in plain PyTorch: ``x`` [B, 1, C]'s key/value written at position ``at`` (an
    int, or a one-element device tensor so that a CUDA graph can replay it at any position), attention over the first
    ``length`` cache positions under ``mask`` (positions not yet written must be masked when ``length`` reaches past
    ``at``)."""
    a, l1, l2 = layer.self_attn, layer.linear1, layer.linear2
    b, c = x.shape[0], x.shape[-1]
    qkv = _linear(x, a.in_proj_weight, a.in_proj_bias, a.packed_in).view(b, 3, a.heads, 1, a.head_dim)
    if isinstance(at, int):
        keys[:, :, at : at + 1] = qkv[:, 1]
        values[:, :, at : at + 1] = qkv[:, 2]
    else:
        keys.index_copy_(2, at, qkv[:, 1])
        values.index_copy_(2, at, qkv[:, 2])
    q = qkv[:, 0].to(keys.dtype)
    mask = mask if mask is None or mask.dtype == torch.bool else mask.to(keys.dtype)
    o = F.scaled_dot_product_attention(q, keys[:, :, :length], values[:, :, :length], attn_mask=mask).to(x.dtype)
    o = _linear(o.view(b, 1, c), a.out_proj.weight, a.out_proj.bias, a.out_proj.packed)
    x = F.layer_norm(x + o, (c,), layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    h = _linear(x, l1.weight, l1.bias, l1.packed).relu_()
    return F.layer_norm(x + _linear(h, l2.weight, l2.bias, l2.packed), (c,), layer.norm2.weight, layer.norm2.bias,
                        layer.norm2.eps)  # fmt: skip


class ARTransformer(nn.Module):
    """Stack of post-LN layers under ``layers`` (official key prefix ``h.layers.N``)."""

    def __init__(self, dim: int, heads: int, num_layers: int, ffn_dim: int, dropout: float = 0.1):
        super().__init__()
        self.layers = nn.ModuleList(ARTransformerLayer(dim, heads, ffn_dim, dropout) for _ in range(num_layers))

    _script_args = None  # (tensors, packed) for the scripted step, or None where it does not apply
    kv_dtype: torch.dtype | None = None  # cache dtype when it differs from the activations' (int8: bf16)

    def prepare_inference(self, int8: bool = False) -> None:
        """Re-layout (fp32) or pack (bf16, optionally int8 weight-only) the weights for fast CPU decoding."""
        for m in self.modules():
            if m is not self and hasattr(m, "prepare_inference"):
                m.prepare_inference(int8)
        self._script_args = self._scripted_weights()
        first = self.layers[0]
        if isinstance(first.linear1.packed, (Int8Dynamic, Int8Pack)):  # attention then reads most of the bytes:
            self.kv_dtype = torch.bfloat16  # a bf16 cache makes the int8 step ~1.4x faster (bench_gpt.py)

    def release_inference(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "release_inference"):
                m.release_inference()
        self._script_args = None
        self.kv_dtype = None
        self.__dict__.pop("_static_runners", None)  # static caches and CUDA graphs (mockvox.models.t2s_graph)

    def _scripted_weights(self):
        """The argument lists of :func:`_scripted_step`: plain weights, or FBGEMM-packed int8 everywhere."""
        tensors, packed = [], []
        for layer in self.layers:
            a = layer.self_attn
            linears = [(a.in_proj_weight, a.in_proj_bias, a.packed_in)]
            linears += [(m.weight, m.bias, m.packed) for m in (a.out_proj, layer.linear1, layer.linear2)]
            kinds = {type(p) for _, _, p in linears}
            tensors += [layer.norm1.weight, layer.norm1.bias, layer.norm2.weight, layer.norm2.bias]
            if kinds == {Int8Dynamic}:
                packed += [p.packed for _, _, p in linears]
            elif kinds == {type(None)}:
                tensors += [t for w, bias, _ in linears for t in (w, bias)]
            else:
                return None  # oneDNN bf16 or ATen int8pack: the Python loop
        if packed and len(packed) != 4 * len(self.layers):
            return None
        eps = {layer.norm1.eps for layer in self.layers} | {layer.norm2.eps for layer in self.layers}
        return ([t.detach() for t in tensors], packed) if len(eps) == 1 else None

    def new_cache(self, batch: int, capacity: int, like: torch.Tensor) -> KVCache:
        """A cache on ``like``'s device, in ``like``'s dtype or in :attr:`kv_dtype` when inference set one."""
        attn = self.layers[0].self_attn
        if self.kv_dtype is not None and not self.training:
            like = like.new_empty(0, dtype=self.kv_dtype)
        return KVCache(len(self.layers), batch, attn.heads, attn.head_dim, capacity, like)

    @torch.inference_mode()
    def step(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """One new position per row (``x`` [B, 1, C]) against the cache: :meth:`forward`'s math in inference.

        The decoding hot path: no module calls, the keys/values written in place, the packed weights called
        directly. ``mask`` as in :meth:`forward` (None when no row is padded).
        """
        cache.ensure(cache.length + 1)
        n = cache.length
        compiled = scripted_step() if self._script_args is not None and not self.training else None
        if compiled is not None:
            first = self.layers[0]
            tensors, packed = self._script_args
            x = compiled(x, mask, cache.k, cache.v, n, first.self_attn.heads, first.norm1.eps, tensors, packed)
            cache.length += 1
            return x
        for i, layer in enumerate(self.layers):
            x = layer_step(layer, x, mask, cache.k[i], cache.v[i], n, n + 1)
        cache.length += 1
        return x

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """Run all layers; with a cache, append the keys/values of ``x`` to it."""
        if cache is not None:
            cache.ensure(cache.length + x.shape[1])
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, cache, i)
        if cache is not None:
            cache.length += x.shape[1]
        return x
