"""Sinc resampling and Kaldi log-mel filterbanks for the v2Pro speaker-verification (SV) embedding, without torchaudio.

Re-implements torchaudio's ``transforms.Resample`` (``sinc_interp_hann``) and ``compliance.kaldi.fbank`` (which
GPT-SoVITS vendors as ``eres2net/kaldi.py``) with the same float32 operations. Differences: ``fbank`` covers the
options GPT-SoVITS uses (no dither, energy, VTLN, ``snip_edges=False`` or mean subtraction), frames a batch in one
pass instead of item by item, and rejects bad arguments with ``ValueError`` instead of ``assert``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6  # torchaudio Resample defaults
ROLLOFF = 0.99
FLOAT_EPS = torch.finfo(torch.float32).eps  # Kaldi's floor before the log (numeric_limits<float>::epsilon())
MEL_BREAK_HZ, MEL_HIGH_Q = 700.0, 1127.0  # Kaldi mel scale: 1127 * ln(1 + f / 700)
WINDOWS = ("povey", "hanning", "hamming", "rectangular")

__all__ = [
    "fbank",
    "fbank_batch",
    "kaldi_mel_banks",
    "kaldi_window",
    "sinc_resample",
    "sinc_resample_kernel",
]


# ── Resampling ──────────────────────────────────────────────────────────────────────────────────────────────────


@functools.lru_cache(maxsize=16)
def _sinc_kernel64(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    # orig, new already divided by their gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    with torch.inference_mode(False):  # cached: must stay a normal tensor whatever mode built it
        idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig  # [1, 1, K]
        # torchaudio divides an integer arange, which gives float32, before adding the float64 taps
        phase = (torch.arange(0, -new, -1) / new).to(torch.float32).double()[:, None, None]  # [new, 1, 1]
        t = ((phase + idx) * base).clamp(-lowpass_filter_width, lowpass_filter_width)  # [new, 1, K]
        window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
        t = t * math.pi
        kernel = torch.where(t == 0, torch.ones_like(t), t.sin() / t) * (window * (base / orig))
    return kernel, width


def sinc_resample_kernel(
    orig: int,
    new: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """The Hann-windowed sinc kernel of ``torchaudio.transforms.Resample(orig, new)``.

    Computed in float64 and then cast to ``dtype`` (the transform's buffer is float32). After reducing both rates by
    their gcd, output phase ``j`` of each group of ``new`` samples uses row ``j``.

    Returns:
        ``(kernel [new, 1, 2 * width + orig], width)``, rates gcd-reduced; ``width`` is the zero padding on the left.
    """
    if orig <= 0 or new <= 0:
        raise ValueError(f"sample rates must be positive integers, got {orig} -> {new}")
    if lowpass_filter_width <= 0:
        raise ValueError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    gcd = math.gcd(int(orig), int(new))
    kernel, width = _sinc_kernel64(int(orig) // gcd, int(new) // gcd, int(lowpass_filter_width), float(rolloff))
    return kernel.to(dtype), width


def sinc_resample(
    wave: torch.Tensor,
    orig: int,
    new: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
) -> torch.Tensor:
    """Band-limited resampling ``[..., N] -> [..., ceil(N * new / orig)]``, as ``torchaudio.transforms.Resample``.

    The signal is zero-padded by ``width`` on the left and ``width + orig`` on the right (gcd-reduced rates),
    convolved with the kernel at stride ``orig`` and cut to length.
    """
    if not wave.is_floating_point():
        raise TypeError(f"sinc_resample needs a floating-point waveform, got {wave.dtype}")
    if orig == new:
        return wave
    kernel, width = sinc_resample_kernel(orig, new, lowpass_filter_width, rolloff, wave.dtype)
    gcd = math.gcd(int(orig), int(new))
    orig, new = int(orig) // gcd, int(new) // gcd
    shape, length = wave.shape, wave.shape[-1]
    x = F.pad(wave.reshape(-1, length), (width, width + orig))  # [B, width + N + width + orig]
    y = F.conv1d(x[:, None], kernel.to(wave.device), stride=orig)  # [B, new, frames]
    y = y.transpose(1, 2).reshape(x.shape[0], -1)[:, : -(-new * length // orig)]  # interleave phases
    return y.reshape(*shape[:-1], y.shape[-1])


# ── Kaldi filterbank ────────────────────────────────────────────────────────────────────────────────────────────


@functools.lru_cache(maxsize=8)
def kaldi_window(window_type: str, size: int) -> torch.Tensor:
    """Kaldi analysis window ``[size]`` (float32); ``povey`` = symmetric Hann ** 0.85 (zero at both ends)."""
    with torch.inference_mode(False):  # cached, see _sinc_kernel64
        if window_type == "povey":
            return torch.hann_window(size, periodic=False, dtype=torch.float32).pow(0.85)
        if window_type == "hanning":
            return torch.hann_window(size, periodic=False, dtype=torch.float32)
        if window_type == "hamming":
            return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=torch.float32)
        if window_type == "rectangular":
            return torch.ones(size, dtype=torch.float32)
    raise ValueError(f"unknown window_type {window_type!r}; accepted: {', '.join(WINDOWS)}")


def _kaldi_mel(freq: torch.Tensor) -> torch.Tensor:
    return MEL_HIGH_Q * (1.0 + freq / MEL_BREAK_HZ).log()


@functools.lru_cache(maxsize=8)
def kaldi_mel_banks(
    num_bins: int, padded_window_size: int, sample_frequency: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi triangular mel filters ``[num_bins, padded_window_size // 2]`` (float32, no VTLN warping).

    ``num_bins + 2`` points equally spaced on the mel scale between ``low_freq`` and ``high_freq`` (``<= 0``:
    offset from Nyquist); filter ``i`` rises from point ``i`` to ``i + 1`` and falls to ``i + 2``, linearly in mel,
    evaluated at the FFT-bin frequencies ``k * sample_frequency / padded_window_size`` with peak <= 1 and no area
    normalisation. ``fbank`` appends a zero column for the Nyquist bin.
    """
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if num_bins <= 3 or not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"bad mel options: {num_bins} bins, {low_freq}-{high_freq} Hz at Nyquist {nyquist} Hz")
    mel_low = MEL_HIGH_Q * math.log(1.0 + low_freq / MEL_BREAK_HZ)
    mel_high = MEL_HIGH_Q * math.log(1.0 + high_freq / MEL_BREAK_HZ)
    delta = (mel_high - mel_low) / (num_bins + 1)
    with torch.inference_mode(False):  # cached, see _sinc_kernel64
        # float32 throughout, in the official order of operations
        index = torch.arange(num_bins, dtype=torch.float32)[:, None]  # [M, 1]
        left = mel_low + index * delta
        center = mel_low + (index + 1.0) * delta
        right = mel_low + (index + 2.0) * delta
        bin_width = sample_frequency / padded_window_size
        mel = _kaldi_mel(bin_width * torch.arange(padded_window_size // 2, dtype=torch.float32))[None]  # [1, K]
        up = (mel - left) / (center - left)
        down = (right - mel) / (right - center)
        return torch.clamp_min(torch.minimum(up, down), 0.0)  # [M, K]


def fbank_batch(
    waves: torch.Tensor,
    num_mel_bins: int = 80,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    preemphasis_coefficient: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    window_type: str = "povey",
    dither: float = 0.0,
) -> torch.Tensor:
    """Kaldi log-mel filterbank of equal-length waveforms ``[B, N] -> [B, 1 + (N - L) // S, num_mel_bins]``.

    Equals stacking ``torchaudio.compliance.kaldi.fbank(w[None], ...)`` per item (``SV.compute_embedding3``) with
    the defaults (``snip_edges``, ``remove_dc_offset``, ``round_to_power_of_two``, ``use_power``, ``use_log_fbank``).
    Per frame of ``L = frame_length`` ms every ``S = frame_shift`` ms: subtract the mean; pre-emphasis
    ``x[j] -= c * x[max(j - 1, 0)]``; window; zero-pad to a power of two; power spectrum; mel filters;
    ``log(max(energy, float32 eps))``. The scale of ``waves`` is kept (floats in [-1, 1] for the SV model).
    """
    if dither != 0.0:
        raise ValueError("fbank supports dither=0 only (dither draws random noise)")
    if waves.dim() != 2 or not waves.is_floating_point():
        raise ValueError(f"fbank_batch needs floating-point waveforms [B, N], got {tuple(waves.shape)} {waves.dtype}")
    shift = int(sample_frequency * frame_shift * 0.001)
    size = int(sample_frequency * frame_length * 0.001)
    padded = 1 if size == 0 else 2 ** (size - 1).bit_length()
    if not 2 <= size <= waves.shape[-1] or shift <= 0:
        raise ValueError(f"need at least one {size}-sample frame (shift {shift}), got {waves.shape[-1]} samples")
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise ValueError(f"preemphasis_coefficient must be in [0, 1], got {preemphasis_coefficient}")
    frames = waves.unfold(-1, size, shift)  # [B, T, L]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis_coefficient != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis_coefficient * previous
    frames = frames * kaldi_window(window_type, size).to(frames)
    power = torch.fft.rfft(F.pad(frames, (0, padded - size))).abs().pow(2.0)  # [B, T, padded // 2 + 1]
    banks = kaldi_mel_banks(num_mel_bins, padded, float(sample_frequency), float(low_freq), float(high_freq))
    banks = F.pad(banks, (0, 1)).to(power)  # [M, padded // 2 + 1], Nyquist bin weight 0
    energies = torch.matmul(power, banks.T)  # [B, T, M]
    return torch.clamp_min(energies, FLOAT_EPS).log()


def fbank(wave: torch.Tensor, num_mel_bins: int = 80, sample_frequency: float = 16000.0, **options) -> torch.Tensor:
    """Kaldi log-mel filterbank of one waveform ``[N]`` or ``[1, N]`` -> ``[frames, num_mel_bins]``.

    ``torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=..., sample_frequency=..., dither=0)``; ``options`` are
    those of :func:`fbank_batch`.
    """
    if wave.dim() == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.dim() != 1:
        raise ValueError(f"fbank needs a mono waveform [N] or [1, N], got {tuple(wave.shape)}")
    return fbank_batch(wave[None], num_mel_bins, sample_frequency, **options)[0]
