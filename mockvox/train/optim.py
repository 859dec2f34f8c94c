"""Optimisers and schedules of the training stages (GPT-SoVITS ``AR/modules/optim.py``, ``lr_schedulers.py``, s2).

``ScaledAdam`` follows the published icefall algorithm (Povey et al., Zipformer paper) used by the GPT stage, without
its batching of same-shaped tensors. Schedules are torch's: the official ``WarmupCosineLRSchedule`` never applies its
warm-up or cosine (it writes 0.002 into every group on each step and makes no initial step), so its effective GPT
schedule is the optimiser's lr 0.01 for the first step, then 0.002 for good: ``MultiStepLR(milestones=[1],
gamma=0.2)`` (``conf/model/gpt/scheduler/official.yaml``). :func:`warmup_cosine` computes the schedule the official
one's name and parameters promise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, SequentialLR

TEXT_LOW_LR_MODULES = ("text_embedding", "encoder_text", "mrte")  # children of ``enc_p``


class ScaledAdam(Optimizer):
    """Adam whose updates are relative to each tensor's RMS, with a learned per-tensor scale and norm clipping.

    For a non-scalar tensor the Adam direction ``g / sqrt(v)`` is multiplied by ``lr * rms(p)`` (``rms`` re-measured
    every ``size_update_period`` steps and floored at ``param_min_rms``), and every ``size_update_period`` steps the
    tensor's overall scale gets its own Adam step (lr ``lr * scalar_lr_scale``) from the gradient of the loss with
    respect to the log-scale, ``sum(p * g)``; a scale outside ``[param_min_rms, param_max_rms]`` is pushed back.
    Scalar tensors get plain Adam at ``lr * scalar_lr_scale`` and are kept within ``+-scalar_max``. Momentum
    (``beta1``) is applied to the final update. Gradients of a group are scaled down when their norm (each tensor
    weighted by its RMS) exceeds ``clipping_scale`` times the median norm of the previous
    ``clipping_update_period`` steps; no clipping happens before that many steps (``clipping_scale=None``: never).
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        lr: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        scalar_lr_scale: float = 0.1,
        eps: float = 1e-8,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_scale: float | None = 2.0,
        clipping_update_period: int = 1000,
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if size_update_period < 1 or clipping_update_period < 1:
            raise ValueError("size_update_period and clipping_update_period must be >= 1")
        defaults = dict(
            lr=lr, betas=tuple(betas), scalar_lr_scale=scalar_lr_scale, eps=eps, param_min_rms=param_min_rms,
            param_max_rms=param_max_rms, scalar_max=scalar_max, size_update_period=size_update_period,
            clipping_scale=clipping_scale, clipping_update_period=clipping_update_period,
        )  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
                if "step" not in self.state[p]:
                    self._init_state(group, p)
            scale = self._clipping_scale(group, params)
            for p in params:
                self._update(group, p, p.grad if scale is None else p.grad * scale)
        return loss

    def _init_state(self, group: dict, p: torch.Tensor) -> None:
        state = self.state[p]
        state["step"] = 0
        state["delta"] = torch.zeros_like(p)  # momentum of the update
        state["exp_avg_sq"] = torch.zeros_like(p)
        if p.numel() > 1:
            state["param_rms"] = p.detach().float().pow(2).mean().sqrt()  # [] float32
            state["scale_exp_avg_sq"] = torch.zeros((), device=p.device)
            state["scale_grads"] = torch.zeros(group["size_update_period"], device=p.device)

    def _clipping_scale(self, group: dict, params: list[torch.Tensor]) -> torch.Tensor | None:
        """Factor (<= 1) for this step's gradients, or None; statistics live with the group's first parameter."""
        if not group["clipping_scale"]:
            return None
        stats = self.state[group["params"][0]]
        step = stats.get("clip_step", 0)
        stats["clip_step"] = step + 1
        if step == 0:
            return None
        sumsq = sum(
            (p.grad.float() * self.state[p]["param_rms"]).pow(2).sum() if p.numel() > 1 else p.grad.float().pow(2).sum()
            for p in params
        )
        norm = sumsq.sqrt()
        period = group["clipping_update_period"]
        if "clip_norms" not in stats:
            stats["clip_norms"] = torch.zeros(period, device=norm.device)
            stats["clip_count"] = torch.zeros((), device=norm.device)
        stats["clip_norms"][step % period] = norm
        if step % period == 0:  # a full period of norms is known: new threshold
            stats["clip_threshold"] = group["clipping_scale"] * stats["clip_norms"].median()
        if step < period:
            return None
        scale = (stats["clip_threshold"] / (norm + 1e-20)).clamp(max=1.0)
        stats["clip_count"] += (scale < 1.0).float()
        return scale

    def _update(self, group: dict, p: torch.Tensor, grad: torch.Tensor) -> None:
        state = self.state[p]
        step = state["step"]
        state["delta"].mul_(group["betas"][0])
        if p.numel() > 1:
            period = group["size_update_period"]
            state["scale_grads"][step % period] = (p.float() * grad.float()).sum()
            if step % period == period - 1:
                state["param_rms"].copy_(p.detach().float().pow(2).mean().sqrt())
                if step > 0:
                    self._scale_update(group, p, state)
            self._tensor_step(group, p, grad, state)
        else:
            self._scalar_step(group, p, grad, state)
        state["step"] = step + 1

    def _scale_update(self, group: dict, p: torch.Tensor, state: dict) -> None:
        """Adam step on the tensor's log-scale from the last ``size_update_period`` gradients, added to delta."""
        beta1, beta2 = group["betas"]
        period = group["size_update_period"]
        size_lr = group["lr"] * group["scalar_lr_scale"]
        scale_grads = state["scale_grads"]  # [period]
        beta2_period = beta2**period
        avg_sq = state["scale_exp_avg_sq"].mul_(beta2_period).add_(scale_grads.pow(2).mean(), alpha=1 - beta2_period)
        correction = 1 - beta2_period ** ((state["step"] + 1) // period)
        scale_step = -size_lr * scale_grads.sum() / ((avg_sq / correction).sqrt() + group["eps"])
        rms = state["param_rms"]
        scale_step = torch.where(rms < group["param_min_rms"], size_lr * period, scale_step)
        scale_step = torch.where(rms > group["param_max_rms"], -size_lr * period, scale_step)
        state["delta"].add_(p * scale_step.to(p.dtype), alpha=1 - beta1)

    def _tensor_step(self, group: dict, p: torch.Tensor, grad: torch.Tensor, state: dict) -> None:
        beta1, beta2 = group["betas"]
        exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** (state["step"] + 1))).sqrt().add_(group["eps"])
        alpha = -group["lr"] * (1 - beta1) * state["param_rms"].clamp(min=group["param_min_rms"])
        state["delta"].add_(grad / denom * alpha.to(p.dtype))
        p.add_(state["delta"])

    def _scalar_step(self, group: dict, p: torch.Tensor, grad: torch.Tensor, state: dict) -> None:
        beta1, beta2 = group["betas"]
        exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** (state["step"] + 1))).sqrt().add_(group["eps"])
        state["delta"].add_(grad / denom, alpha=-group["lr"] * group["scalar_lr_scale"] * (1 - beta1))
        p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
        p.add_(state["delta"])


def warmup_cosine(
    optimizer: Optimizer, lr_init: float, peak: float, lr_end: float, warmup_steps: int, total_steps: int
) -> SequentialLR:
    """Linear warm-up from ``lr_init`` to ``peak`` over ``warmup_steps``, cosine decay to ``lr_end`` at
    ``total_steps``, then constant ``lr_end`` (stepped once per optimizer step): torch's ``LinearLR``,
    ``CosineAnnealingLR`` and ``ConstantLR`` in a ``SequentialLR``.

    ``peak`` is the optimiser's lr (every group at it): the warm-up and the final factor are relative to it.
    """
    if not 0 < lr_init <= peak or lr_end < 0 or warmup_steps < 0 or total_steps <= warmup_steps:
        raise ValueError(
            f"need 0 < lr_init <= peak, lr_end >= 0 and 0 <= warmup_steps < total_steps, got lr_init={lr_init}, "
            f"peak={peak}, lr_end={lr_end}, warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    lrs = {g.get("initial_lr", g["lr"]) for g in optimizer.param_groups}
    if lrs != {peak}:
        raise ValueError(f"warmup_cosine needs every parameter group at lr = peak ({peak}), got {sorted(lrs)}")
    phases = [LinearLR(optimizer, lr_init / peak, 1.0, total_iters=warmup_steps)] if warmup_steps else []
    phases.append(CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=lr_end))
    phases.append(ConstantLR(optimizer, factor=lr_end / peak, total_iters=sys.maxsize))  # hold lr_end for good
    milestones = [warmup_steps, total_steps] if warmup_steps else [total_steps]
    return SequentialLR(optimizer, phases, milestones)


def constant(optimizer: Optimizer) -> ConstantLR:
    """Keep every group at its configured lr."""
    return ConstantLR(optimizer, factor=1.0, total_iters=0)


def _text_split(generator: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable generator parameters outside / inside ``enc_p.{text_embedding, encoder_text, mrte}``."""
    low_ids = {id(p) for name in TEXT_LOW_LR_MODULES for p in getattr(generator.enc_p, name).parameters()}
    trainable = [p for p in generator.parameters() if p.requires_grad]
    return [p for p in trainable if id(p) not in low_ids], [p for p in trainable if id(p) in low_ids]


def text_low_lr_groups(generator: nn.Module, lr: float, text_low_lr_rate: float) -> list[dict]:
    """SoVITS v2 generator parameter groups: ``enc_p.text_embedding``, ``enc_p.encoder_text`` and ``enc_p.mrte``
    at ``lr * text_low_lr_rate``, every other trainable parameter at ``lr`` (official ``s2_train.py``)."""
    base, low = _text_split(generator)
    return [
        {"params": base, "lr": lr, "name": "base"},
        {"params": low, "lr": lr * text_low_lr_rate, "name": "text_low_lr"},
    ]


def text_low_lr_optimizer(
    optimizer: Callable[[list[dict]], Optimizer], generator: nn.Module, text_low_lr_rate: float
) -> Optimizer:
    """``optimizer`` (a class or partial: ``AdamW`` from the config) over the groups of :func:`text_low_lr_groups`,
    the text modules at ``text_low_lr_rate`` times the optimiser's own lr."""
    base, low = _text_split(generator)
    opt = optimizer([{"params": base, "name": "base"}, {"params": low, "name": "text_low_lr"}])
    opt.param_groups[1]["lr"] *= text_low_lr_rate
    return opt
