"""Shared helpers of the VITS/SoVITS blocks (GPT-SoVITS ``module/commons.py``) and weight-normed convolutions.

The weight-normed layers store ``weight_g``/``weight_v`` exactly like ``torch.nn.utils.weight_norm`` (the layout of
the official checkpoints) without the deprecated hook machinery; ``remove_weight_norm()`` folds them into ``weight``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return int((kernel_size * dilation - dilation) / 2)


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """``[B]`` lengths -> ``[B, T]`` bool mask (True inside)."""
    if max_length is None:
        max_length = int(lengths.max())
    positions = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def fused_add_tanh_sigmoid_multiply(a: torch.Tensor, b: torch.Tensor, n_channels: int) -> torch.Tensor:
    """WaveNet gate: ``tanh((a+b)[:, :n]) * sigmoid((a+b)[:, n:])``."""
    x = a + b
    return torch.tanh(x[:, :n_channels]) * torch.sigmoid(x[:, n_channels:])


def slice_segments(x: torch.Tensor, ids_str: torch.Tensor, segment_size: int) -> torch.Tensor:
    """``x [B, C, T]`` -> ``[B, C, segment_size]`` starting at ``ids_str[b]`` per item."""
    ret = torch.zeros_like(x[:, :, :segment_size])
    for i in range(x.size(0)):
        start = int(ids_str[i])
        ret[i] = x[i, :, start : start + segment_size]
    return ret


def rand_slice_segments(
    x: torch.Tensor, x_lengths: torch.Tensor, segment_size: int, uniform: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``segment_size`` windows inside each item's valid length.

    ``uniform [B]`` in [0, 1) replaces the ``torch.rand([B])`` draw (for reproducing a stored run).
    """
    if uniform is None:
        uniform = torch.rand([x.size(0)], device=x.device)
    ids_str = (uniform.to(x.device) * (x_lengths - segment_size + 1)).to(torch.long)
    return slice_segments(x, ids_str, segment_size), ids_str


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    return v.norm(2, dim=tuple(range(1, v.dim())), keepdim=True)


class _WeightNorm:
    """Mixin turning a conv's ``weight`` into ``weight_g * weight_v / ||weight_v||`` (norm over all dims but 0)."""

    def _apply_weight_norm(self) -> None:
        weight = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(_norm_except_dim0(weight))
        self.weight_v = nn.Parameter(weight.clone())

    def normed_weight(self) -> torch.Tensor:
        if "weight" in self._parameters:
            return self._parameters["weight"]
        g, v = self.weight_g, self.weight_v
        if torch.is_grad_enabled() and (g.requires_grad or v.requires_grad):
            return v * (g / _norm_except_dim0(v))
        # no autograd: reuse the folded weight while g and v are unchanged (in-place updates bump _version)
        key = (g.data_ptr(), v.data_ptr(), g._version, v._version, g.dtype, g.device)
        cache = getattr(self, "_folded", None)
        if cache is None or cache[0] != key:
            cache = (key, v * (g / _norm_except_dim0(v)))
            self._folded = cache
        return cache[1]

    def remove_weight_norm(self) -> None:
        """Fold ``weight_g``/``weight_v`` into a plain ``weight`` (faster inference; plain-weight checkpoints)."""
        if "weight" in self._parameters:
            return
        weight = self.normed_weight().detach()
        del self.weight_g, self.weight_v
        self._folded = None
        self.weight = nn.Parameter(weight)


class WNConv1d(_WeightNorm, nn.Conv1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._apply_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConv2d(_WeightNorm, nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._apply_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._apply_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(
            x,
            self.normed_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


def conv1d_channels_last(layer: nn.Conv1d | nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a (weight-normed, transposed) 1-d conv layer to ``x [B, C, 1, T]`` kept in channels-last memory.

    Same result as ``layer(x.squeeze(2))``; on CPU oneDNN runs the channels-last 2-d form 2-3x faster.
    """
    weight = (layer.normed_weight() if isinstance(layer, _WeightNorm) else layer.weight).unsqueeze(2)
    stride, padding, dilation = (1, layer.stride[0]), (0, layer.padding[0]), (1, layer.dilation[0])
    if isinstance(layer, nn.ConvTranspose1d):
        output_padding = (0, layer.output_padding[0])
        return F.conv_transpose2d(x, weight, layer.bias, stride, padding, output_padding, layer.groups, dilation)
    return F.conv2d(x, weight, layer.bias, stride, padding, dilation, layer.groups)


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold the weight norm of every weight-normed layer inside ``module``; returns ``module``."""
    for layer in module.modules():
        if isinstance(layer, _WeightNorm):
            layer.remove_weight_norm()
    return module


class LayerNorm(nn.Module):
    """Channel-first LayerNorm ``[B, C, T]`` with VITS parameter names ``gamma``/``beta``."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Every submodule of ``modules`` in eval mode inside the block, each one's own mode restored after."""
    modes = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for sub, mode in modes:
            sub.training = mode
