"""Inference-only packed weights for CPU linears: int8 weight-only (FBGEMM or ATen's int8pack) and oneDNN bf16.

Each object is built once from a weight and called as ``packed(x, bias)``; :func:`mockvox.precision.int8_kernel`
says which int8 kind this CPU runs.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


class Int8Dynamic:
    """int8 weight-only linear through FBGEMM: per-row int8 weights packed once, fp32 activations quantised per call.

    The fastest int8 path on every x86 CPU with AVX2 (4x fewer weight bytes than fp32 and a vectorised u8 x s8
    kernel; measured in ``benchmarks/bench_gpt.py``); the bias rides in the packed weight, the output is fp32.
    Activations use 7 bits (``reduce_range``): no int16 saturation in the AVX2 kernels without VNNI.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        w = weight.detach().float()
        scales = w.abs().amax(1).clamp_min(1e-12).double() / 127
        with warnings.catch_warnings():  # quantised tensors are deprecated upstream; the packed weight is what we use
            warnings.simplefilter("ignore")
            q = torch.quantize_per_channel(w, scales, torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8)
        self.packed = torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach().float())
        self.out_features = w.shape[0]

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        del bias  # packed with the weight
        return torch.ops.quantized.linear_dynamic(x.float(), self.packed, True).to(x.dtype)


class Int8Pack:
    """int8 weight-only linear through ATen's ``_weight_int8pack_mm`` (bf16 activations): where FBGEMM is missing."""

    def __init__(self, weight: torch.Tensor):
        w = weight.detach().float()
        self.scales = (w.abs().amax(1).clamp_min(1e-12) / 127).to(torch.bfloat16)
        self.q = (w / self.scales.float()[:, None]).round().clamp(-127, 127).to(torch.int8)

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1]).to(torch.bfloat16).contiguous()
        if x2.shape[0] > 8:  # the int8 kernel is a GEMV; a whole prompt is faster through a dequantised GEMM
            y = F.linear(x2, self.q.to(torch.bfloat16) * self.scales[:, None])
        else:
            y = torch._weight_int8pack_mm(x2, self.q, self.scales)
        y = y.view(*x.shape[:-1], self.q.shape[0]).to(x.dtype)
        return y if bias is None else y + bias


class OneDNNBf16:
    """A bf16 weight reordered once for oneDNN's fused linear."""

    def __init__(self, weight: torch.Tensor):
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, bias, "none", [], "")
