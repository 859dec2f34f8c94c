"""Linear and mel spectrograms; re-implements GPT-SoVITS ``module/mel_processing.py`` (same numerics).

Differences from the official module: windows and filterbanks are cached per (parameters, dtype, device) — the
official cache key omits ``n_fft``/``n_mels`` — and always built as normal tensors (built first under
``torch.inference_mode``, they would be inference tensors that a later training step cannot use); the deprecated
real-valued ``torch.stft`` output is replaced by the complex one (same magnitudes).
"""

from __future__ import annotations

import functools

import librosa
import torch
import torch.nn.functional as F

MAGNITUDE_EPS = 1e-8  # added under the square root of re^2 + im^2
LOG_CLIP = 1e-5  # floor before the log of dynamic range compression


@functools.lru_cache(maxsize=32)
def hann_window(win_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Periodic Hann window (``torch.hann_window`` default), cached."""
    with torch.inference_mode(False):  # cached: must stay usable by autograd whatever mode built it
        return torch.hann_window(win_size).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def mel_filterbank(
    sampling_rate: int,
    n_fft: int,
    num_mels: int,
    fmin: float,
    fmax: float | None,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """librosa Slaney mel filterbank ``[num_mels, n_fft // 2 + 1]`` (htk=False, norm='slaney'), cached."""
    basis = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)
    with torch.inference_mode(False):  # see hann_window
        return torch.from_numpy(basis).to(dtype=dtype, device=device)


def dynamic_range_compression(x: torch.Tensor, c: float = 1.0, clip_val: float = LOG_CLIP) -> torch.Tensor:
    return torch.log(torch.clamp(x, min=clip_val) * c)


def _stft_magnitude(y: torch.Tensor, n_fft: int, hop_size: int, win_size: int, center: bool) -> torch.Tensor:
    # y [B, N] -> [B, n_fft // 2 + 1, F]
    pad = int((n_fft - hop_size) / 2)
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        y,
        n_fft,
        hop_length=hop_size,
        win_length=win_size,
        window=hann_window(win_size, y.dtype, y.device),
        center=center,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + MAGNITUDE_EPS)


def spectrogram_torch(
    y: torch.Tensor, n_fft: int, sampling_rate: int, hop_size: int, win_size: int, center: bool = False
) -> torch.Tensor:
    """Linear magnitude spectrogram ``[B, n_fft // 2 + 1, F]`` of ``y [B, N]``.

    ``y`` is reflect-padded by ``(n_fft - hop_size) / 2`` on both sides, so ``F = 1 + (N + 2 pad - n_fft) // hop``.
    ``sampling_rate`` is unused (kept for the official signature).
    """
    del sampling_rate
    return _stft_magnitude(y, n_fft, hop_size, win_size, center)


def spec_to_mel_torch(
    spec: torch.Tensor, n_fft: int, num_mels: int, sampling_rate: int, fmin: float, fmax: float | None
) -> torch.Tensor:
    """Log-mel ``[B, num_mels, F]`` from a linear spectrogram ``[B, n_fft // 2 + 1, F]``."""
    basis = mel_filterbank(sampling_rate, n_fft, num_mels, fmin, fmax, spec.dtype, spec.device)
    return dynamic_range_compression(torch.matmul(basis, spec))


def mel_spectrogram_torch(
    y: torch.Tensor,
    n_fft: int,
    num_mels: int,
    sampling_rate: int,
    hop_size: int,
    win_size: int,
    fmin: float,
    fmax: float | None,
    center: bool = False,
) -> torch.Tensor:
    """Log-mel ``[B, num_mels, F]`` of ``y [B, N]``: the linear spectrogram followed by :func:`spec_to_mel_torch`."""
    spec = _stft_magnitude(y, n_fft, hop_size, win_size, center)
    return spec_to_mel_torch(spec, n_fft, num_mels, sampling_rate, fmin, fmax)
