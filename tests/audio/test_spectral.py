"""Spectrogram / mel functions: shapes, caching, consistency between the two mel paths."""

import math

import torch

from mockvox.audio.spectral import (
    hann_window,
    mel_filterbank,
    mel_spectrogram_torch,
    spec_to_mel_torch,
    spectrogram_torch,
)


def _tone(n: int, sr: int = 32000, f0: float = 220.0) -> torch.Tensor:
    t = torch.arange(n) / sr
    return (0.3 * torch.sin(2 * math.pi * f0 * t)).unsqueeze(0)  # [1, N]


def test_spectrogram_shape_follows_reflect_padding():
    n_fft, hop = 2048, 640
    y = _tone(48000)
    spec = spectrogram_torch(y, n_fft, 32000, hop, n_fft)
    pad = (n_fft - hop) // 2
    assert spec.shape == (1, n_fft // 2 + 1, 1 + (48000 + 2 * pad - n_fft) // hop)
    assert spec.min() >= math.sqrt(1e-8) * 0.999  # magnitude floor from the eps under the root


def test_spectrogram_peak_at_tone_bin():
    spec = spectrogram_torch(_tone(32000, f0=1000.0), 2048, 32000, 640, 2048)
    peak_bin = spec.mean(-1).argmax().item()
    assert abs(peak_bin - 1000.0 * 2048 / 32000) <= 1


def test_mel_paths_agree_and_other_parameters_work():
    y = _tone(24000)
    for n_fft, hop, n_mels in [(2048, 640, 128), (1280, 320, 100)]:
        spec = spectrogram_torch(y, n_fft, 32000, hop, n_fft)
        a = spec_to_mel_torch(spec, n_fft, n_mels, 32000, 0.0, None)
        b = mel_spectrogram_torch(y, n_fft, n_mels, 32000, hop, n_fft, 0.0, None)
        assert a.shape == b.shape == (1, n_mels, spec.shape[-1])
        assert torch.allclose(a, b, atol=1e-4)
        assert a.min() >= math.log(1e-5) - 1e-6


def test_caches_are_keyed_by_parameters_and_dtype():
    w32 = hann_window(1024, torch.float32, torch.device("cpu"))
    w64 = hann_window(1024, torch.float64, torch.device("cpu"))
    assert w32.dtype == torch.float32 and w64.dtype == torch.float64
    assert hann_window(1024, torch.float32, torch.device("cpu")) is w32
    a = mel_filterbank(32000, 2048, 128, 0.0, None, torch.float32, torch.device("cpu"))
    b = mel_filterbank(32000, 1280, 100, 0.0, None, torch.float32, torch.device("cpu"))
    assert a.shape == (128, 1025) and b.shape == (100, 641)


def test_float64_input_stays_float64():
    y = _tone(8000).double()
    assert spectrogram_torch(y, 512, 32000, 128, 512).dtype == torch.float64


def test_caches_built_in_inference_mode_still_serve_autograd():
    hann_window.cache_clear()
    mel_filterbank.cache_clear()
    with torch.inference_mode():
        mel_spectrogram_torch(_tone(8000), 512, 40, 32000, 128, 512, 0.0, None)
    assert not hann_window(512, torch.float32, torch.device("cpu")).is_inference()
    assert not mel_filterbank(32000, 512, 40, 0.0, None, torch.float32, torch.device("cpu")).is_inference()
    y = _tone(8000).requires_grad_()
    mel_spectrogram_torch(y, 512, 40, 32000, 128, 512, 0.0, None).mean().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
