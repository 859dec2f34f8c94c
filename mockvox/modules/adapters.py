"""An unmerged LoRA adapter over a linear layer that other models share (resident v4 voices on one base)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LoraLinear(nn.Module):
    """``base(x) + scale * B (A x)`` with ``base`` left untouched, so several voices can hold the same base layer.

    ``lora_a [r, in]`` and ``lora_b [out, r]`` are the voice's own (frozen, inference only); ``scale`` is
    ``alpha / r``. Merging gives the same result up to rounding; not merging is what lets the base stay shared.
    """

    def __init__(self, base: nn.Linear, lora_a: Tensor, lora_b: Tensor, scale: float):
        super().__init__()
        if lora_a.shape[1] != base.in_features or lora_b.shape[0] != base.out_features:
            raise ValueError(
                f"LoRA A {tuple(lora_a.shape)} / B {tuple(lora_b.shape)} do not fit a linear layer "
                f"{base.in_features} -> {base.out_features}"
            )
        self.base = base
        self.lora_a = nn.Parameter(lora_a, requires_grad=False)
        self.lora_b = nn.Parameter(lora_b, requires_grad=False)
        self.scale = float(scale)

    def delta(self, x: Tensor) -> Tensor:
        return F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.delta(x)
