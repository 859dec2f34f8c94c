"""HiFi-GAN generator: re-implements GPT-SoVITS ``module/models.py::Generator`` with ``modules.ResBlock1/ResBlock2``.

Same parameter names (``conv_pre``, ``ups.i``, ``resblocks.j.convs1/convs2``, ``conv_post``, ``cond``). SoVITS v2 uses
weight-normed ``ups``/resblocks; the v4 vocoder is the same network with other sizes, ``is_bias=True`` and plain
weights: build it with ``weight_norm=False`` or call ``remove_weight_norm()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.commons import (
    LRELU_SLOPE,
    WNConv1d,
    WNConvTranspose1d,
    conv1d_channels_last,
    get_padding,
    remove_weight_norm,
)


def _conv(weight_norm: bool, *args, **kwargs) -> nn.Conv1d:
    return WNConv1d(*args, **kwargs) if weight_norm else nn.Conv1d(*args, **kwargs)


def _apply(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # x [B, C, T], or [B, C, 1, T] in channels-last memory (the generator's fast layout)
    return conv1d_channels_last(layer, x) if x.dim() == 4 else layer(x)


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) residual pairs with leaky ReLU 0.1 before each conv."""

    def __init__(
        self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3, 5), weight_norm: bool = True
    ):
        super().__init__()
        self.convs1 = nn.ModuleList(
            [
                _conv(weight_norm, channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
                for d in dilation
            ]
        )
        self.convs2 = nn.ModuleList(
            [_conv(weight_norm, channels, channels, kernel_size, 1, padding=get_padding(kernel_size)) for _ in dilation]
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            xt = F.leaky_relu(_apply(c1, xt), LRELU_SLOPE, inplace=True)  # in place on fresh outputs: same values
            if x_mask is not None:
                xt = xt * x_mask
            x = _apply(c2, xt).add_(x)
        return x if x_mask is None else x * x_mask


class ResBlock2(nn.Module):
    """Dilated convs with one leaky ReLU each (HiFi-GAN V3 block, ``resblock="2"``)."""

    def __init__(
        self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3), weight_norm: bool = True
    ):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                _conv(weight_norm, channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
                for d in dilation
            ]
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        for c in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = _apply(c, xt).add_(x)
        return x if x_mask is None else x * x_mask


class Generator(nn.Module):
    """Frames ``[B, initial_channel, T]`` (+ ``g [B, gin, 1]``) -> waveform ``[B, 1, T * prod(upsample_rates)]``."""

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: list[int],
        resblock_dilation_sizes: list[list[int]],
        upsample_rates: list[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: list[int],
        gin_channels: int = 0,
        is_bias: bool = False,
        weight_norm: bool = True,
        channels_last: bool = True,
    ):
        super().__init__()
        if resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.channels_last = channels_last  # False: the upstream [B, C, T] layout (same values, slower on CPU)
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        up = WNConvTranspose1d if weight_norm else nn.ConvTranspose1d
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            self.ups.append(up(ch * 2, ch, k, u, padding=(k - u) // 2))
            for k_r, d_r in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, k_r, tuple(d_r), weight_norm=weight_norm))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=is_bias)
        for layer in self.ups:
            w = layer.weight_v if weight_norm else layer.weight
            nn.init.normal_(w, 0.0, 0.01)
        if gin_channels != 0:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.conv_pre.weight.dtype  # a reduced-precision decoder takes float32 inputs
        x = self.conv_pre(x.to(dtype))  # [B, C0, T]
        if g is not None:
            x = x + self.cond(g.to(dtype))
        if self.channels_last:
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # [B, C0, 1, T] stored as [B, 1, T, C0]
        for i, up in enumerate(self.ups):
            x = _apply(up, F.leaky_relu(x, LRELU_SLOPE, inplace=True))  # [B, C0 / 2^(i+1), (1,) T * prod(rates[:i+1])]
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs.add_(block(x))
            x = xs.div_(self.num_kernels)
        x = _apply(self.conv_post, F.leaky_relu(x, inplace=True))  # default slope 0.01, as upstream
        if x.dim() == 4:
            x = x.squeeze(2)
        return torch.tanh(x).contiguous()  # [B, 1, T * prod(upsample_rates)]

    def remove_weight_norm(self) -> None:
        """Fold every ``weight_g``/``weight_v`` pair into ``weight`` (in place)."""
        remove_weight_norm(self)
