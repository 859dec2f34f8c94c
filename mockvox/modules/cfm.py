"""Conditional flow matching around the DiT (GPT-SoVITS ``module/models.py::CFM``).

Sampling is the official Euler loop (reference prompt frames pinned to zero, text/step-size conditioning computed
once); it differs only in that the initial noise can be passed in and that the classifier-free-guidance branch,
when enabled, runs in the same batched DiT call. The training objective is a pure function
(:func:`flow_matching_loss`) with the official random prompt length and shortcut (self-consistency) targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mockvox.modules.dit import DiT


class CFM(nn.Module):
    def __init__(self, in_channels: int, estimator: DiT):
        super().__init__()
        self.in_channels = in_channels
        self.estimator = estimator

    @torch.inference_mode()
    def inference(
        self,
        mu: Tensor,
        x_lens: Tensor,
        prompt: Tensor,
        n_timesteps: int,
        temperature: float = 1.0,
        inference_cfg_rate: float = 0.0,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Euler sampling.

        Args:
            mu: conditioning features ``[B, T, text_dim]``.
            x_lens: valid frames per item ``[B]``.
            prompt: normalised reference mel ``[B or 1, mel, P]`` occupying the first P frames.
            noise: initial ``[B, mel, T]`` draw; ``torch.randn`` (the official draw) when None.

        Returns:
            Normalised mel ``[B, mel, T]`` whose first P frames are zero (in ``mu``'s dtype). A DiT cast to
            another dtype (e.g. bfloat16) runs in that dtype while the Euler state stays in ``mu``'s.
        """
        b, t = mu.shape[:2]
        if noise is None:
            noise = torch.randn([b, self.in_channels, t], device=mu.device, dtype=mu.dtype)
        x = noise * temperature
        p = prompt.shape[-1]
        prompt_x = torch.zeros_like(x)
        prompt_x[..., :p] = prompt[..., :p]
        x[..., :p] = 0
        est = self.estimator
        run_dtype = est.proj_out.weight.dtype
        mu = mu.transpose(1, 2).to(run_dtype)  # [B, text_dim, T]
        prompt_x = prompt_x.to(run_dtype)
        d = 1 / n_timesteps
        d_tensor = torch.full((b,), d, device=mu.device, dtype=x.dtype)
        guided = inference_cfg_rate > 1e-5
        cond = est.condition(prompt_x, x_lens, d_tensor, mu)
        if guided:  # unconditional branch batched after the conditional one
            uncond = est.condition(prompt_x, x_lens, d_tensor, mu, drop_audio_cond=True, drop_text=True)
            cond = _stack_conditioning(cond, uncond)
        t_now = 0.0
        for _ in range(n_timesteps):
            t_tensor = torch.full((b,), t_now, device=mu.device, dtype=x.dtype)
            x_in = x.to(run_dtype)
            if guided:
                v_all = est.velocity(torch.cat([x_in, x_in]), torch.cat([t_tensor, t_tensor]), cond)
                v, neg = v_all[:b].transpose(1, 2).to(x.dtype), v_all[b:].transpose(1, 2).to(x.dtype)
                v = v + (v - neg) * inference_cfg_rate
            else:
                v = est.velocity(x_in, t_tensor, cond).transpose(1, 2).to(x.dtype)  # [B, mel, T]
            x = x + d * v
            t_now = t_now + d
            x[:, :, :p] = 0
        return x


def _stack_conditioning(a, b):
    """Batch two conditionings of the same length (conditional first)."""
    masks = (a.attn_mask, b.attn_mask)
    return type(a)(
        text_embed=torch.cat([a.text_embed, b.text_embed]),
        dt_embed=torch.cat([a.dt_embed, b.dt_embed]),
        static_input=torch.cat([a.static_input, b.static_input]),
        rope=a.rope,
        attn_mask=None if masks[0] is None else torch.cat(masks),
        row_mask=None if a.row_mask is None else torch.cat([a.row_mask, b.row_mask]),
    )


def random_prompt_lengths(mel_lengths: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Official prompt length: ``floor(U(0,1) * 2/3 * mel_length)`` per item."""
    u = torch.rand(mel_lengths.shape, generator=generator, device=mel_lengths.device)
    return (u * (mel_lengths * 2 / 3)).floor().long()


def flow_matching_loss(
    estimator: DiT,
    x1: Tensor,
    x_lens: Tensor,
    prompt_lens: Tensor,
    mu: Tensor,
    shortcut: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """CFM training loss (MSE on the non-prompt valid frames, averaged over the batch).

    Args:
        x1: target normalised mel ``[B, mel, T]``; mu: conditioning features ``[B, text_dim, T]``.
        prompt_lens: frames given as prompt (see :func:`random_prompt_lengths`).
        shortcut: use the step-size self-consistency target (official: with probability 0.3), where the target is
            the mean of two detached half-steps of size ``d = 2^-k``, k in [2, 8), and the model is told ``2d``.
    """
    b = x1.shape[0]
    dev = x1.device
    t = torch.rand([b], generator=generator, device=dev, dtype=x1.dtype)
    x0 = torch.randn(x1.shape, generator=generator, device=dev, dtype=x1.dtype)
    vt = x1 - x0
    xt = x0 + t[:, None, None] * vt
    dt = torch.zeros_like(t)
    frames = torch.arange(x1.shape[-1], device=dev)[None, None, :]
    in_prompt = frames < prompt_lens.to(dev)[:, None, None]  # [B, 1, T]
    prompt = x1 * in_prompt
    xt = xt.masked_fill(in_prompt, 0.0)
    if shortcut:
        d = 1 / torch.pow(2, torch.randint(2, 8, (b,), generator=generator, device=dev)).to(x1.dtype)
        d_input = torch.where(d < 1e-2, torch.zeros_like(d), d)
        with torch.no_grad():
            v1 = estimator(xt, prompt, x_lens, t, d_input, mu).transpose(1, 2)
            v2 = estimator(xt + d[:, None, None] * v1, prompt, x_lens, t + d, d_input, mu).transpose(1, 2)
        vt = (v1 + v2) / 2
        dt = 2 * d
    pred = estimator(xt, prompt, x_lens, t, dt, mu).transpose(1, 2)  # [B, mel, T]
    losses = [
        F.mse_loss(pred[i, :, prompt_lens[i] : x_lens[i]], vt[i, :, prompt_lens[i] : x_lens[i]]) for i in range(b)
    ]
    return torch.stack(losses).sum() / b
