"""SoVITS v4 mel spectrogram: GPT-SoVITS ``TTS.mel_fn_v4`` + ``norm_spec``/``denorm_spec`` (same numerics).

32 kHz audio, n_fft = win = 1280, hop 320 (100 frames/s), 100 Slaney mel bins, fmin 0, fmax Nyquist, natural-log
magnitudes clamped at 1e-5; the CFM works on the log-mel mapped linearly from [-12, 2] to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mockvox.audio.spectral import mel_spectrogram_torch


@dataclass(frozen=True)
class MelConfig:
    sampling_rate: int = 32000
    n_fft: int = 1280
    win_size: int = 1280
    hop_size: int = 320
    num_mels: int = 100
    fmin: float = 0.0
    fmax: float | None = None
    spec_min: float = -12.0
    spec_max: float = 2.0


V4_MEL = MelConfig()


def mel_v4(wave: torch.Tensor, cfg: MelConfig = V4_MEL) -> torch.Tensor:
    """Log-mel ``[B, num_mels, 1 + N // hop]`` of a ``cfg.sampling_rate`` waveform ``[B, N]``."""
    return mel_spectrogram_torch(
        wave, cfg.n_fft, cfg.num_mels, cfg.sampling_rate, cfg.hop_size, cfg.win_size, cfg.fmin, cfg.fmax, center=False
    )


def norm_spec(mel: torch.Tensor, cfg: MelConfig = V4_MEL) -> torch.Tensor:
    """Log-mel -> the CFM's [-1, 1] range."""
    return (mel - cfg.spec_min) / (cfg.spec_max - cfg.spec_min) * 2 - 1


def denorm_spec(x: torch.Tensor, cfg: MelConfig = V4_MEL) -> torch.Tensor:
    """Inverse of :func:`norm_spec` (what the vocoder receives)."""
    return (x + 1) / 2 * (cfg.spec_max - cfg.spec_min) + cfg.spec_min
