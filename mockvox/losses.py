"""SoVITS / VITS training losses as pure functions (GPT-SoVITS ``module/losses.py`` and the s2 mel loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_loss(fmap_r: list[list[torch.Tensor]], fmap_g: list[list[torch.Tensor]]) -> torch.Tensor:
    """Feature matching: ``2 * sum over sub-discriminators and maps of mean|f_r - f_g|`` (real maps detached)."""
    loss = 0
    for maps_r, maps_g in zip(fmap_r, fmap_g, strict=True):
        for r, g in zip(maps_r, maps_g, strict=True):
            loss = loss + torch.mean(torch.abs(r.float().detach() - g.float()))
    return loss * 2


def discriminator_loss(
    real_outputs: list[torch.Tensor], generated_outputs: list[torch.Tensor]
) -> tuple[torch.Tensor, list[float], list[float]]:
    """LSGAN discriminator loss ``sum mean((1 - D(y))^2) + mean(D(y_hat)^2)``, plus the per-sub-D terms."""
    loss, r_losses, g_losses = 0, [], []
    for dr, dg in zip(real_outputs, generated_outputs, strict=True):
        r_loss = torch.mean((1 - dr.float()) ** 2)
        g_loss = torch.mean(dg.float() ** 2)
        loss = loss + r_loss + g_loss
        r_losses.append(r_loss.item())
        g_losses.append(g_loss.item())
    return loss, r_losses, g_losses


def generator_loss(generated_outputs: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss ``sum mean((1 - D(y_hat))^2)``, plus the per-sub-D terms."""
    loss, gen_losses = 0, []
    for dg in generated_outputs:
        term = torch.mean((1 - dg.float()) ** 2)
        gen_losses.append(term)
        loss = loss + term
    return loss, gen_losses


def kl_loss(
    z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, z_mask: torch.Tensor
) -> torch.Tensor:
    """KL(q || p) of the flowed posterior sample ``z_p`` against the prior ``N(m_p, exp(logs_p))``, masked mean."""
    z_p, logs_q, m_p, logs_p, z_mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, z_mask))
    kl = logs_p - logs_q - 0.5
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * z_mask) / torch.sum(z_mask)


def mel_l1_loss(mel_real: torch.Tensor, mel_generated: torch.Tensor) -> torch.Tensor:
    """L1 between log-mels ``[B, n_mels, F]`` (the s2 reconstruction loss before its ``c_mel`` weight)."""
    return F.l1_loss(mel_real, mel_generated)
