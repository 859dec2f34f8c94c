"""GPT-SoVITS silence slicer (official ``tools/slicer2.py::Slicer``), vectorised, plus a maximum slice length.

Same RMS curve (zero-padded frames of ``win`` samples every ``hop``), same silence decisions and cut positions
as the official; differences: RMS by cumulative sums, decisions taken per silent run instead of per frame,
over-long chunks split at their quietest frame, and the official edge cases (input shorter than
``min_length``, no cut point) return ordinary ``Slice`` ranges instead of a bare waveform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Slice:
    """A kept region of the input, in samples: ``audio[start:end]``."""

    start: int
    end: int


@dataclass(frozen=True)
class SlicerConfig:
    """Slicer parameters (the GPT-SoVITS WebUI defaults); times in milliseconds."""

    threshold_db: float = -34.0
    min_length_ms: int = 4000
    min_interval_ms: int = 300
    hop_size_ms: int = 10
    max_sil_kept_ms: int = 500
    max_length_ms: int | None = 20000  # not in the official slicer: long slices hurt training

    def __post_init__(self) -> None:
        if not self.min_length_ms >= self.min_interval_ms >= self.hop_size_ms > 0:
            raise ValueError("slicer: need min_length_ms >= min_interval_ms >= hop_size_ms > 0")
        if self.max_sil_kept_ms < self.hop_size_ms:
            raise ValueError("slicer: need max_sil_kept_ms >= hop_size_ms")
        if self.max_length_ms is not None and self.max_length_ms < self.min_length_ms:
            raise ValueError("slicer: need max_length_ms >= min_length_ms")


def rms_curve(samples: np.ndarray, win: int, hop: int) -> np.ndarray:
    """RMS of frames of ``win`` samples every ``hop`` after zero-padding ``win // 2`` on both sides."""
    pad = win // 2
    sq = np.square(samples, dtype=np.float64)
    csum = np.concatenate([np.zeros(pad + 1), np.cumsum(sq), np.full(pad, 0.0)])
    csum[len(sq) + pad + 1 :] = csum[len(sq) + pad]  # padding adds nothing
    n_frames = 1 + (len(samples) + 2 * pad - win) // hop
    starts = np.arange(n_frames) * hop
    power = (csum[starts + win] - csum[starts]) / win
    return np.sqrt(np.maximum(power, 0.0))


def _silent_runs(silent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and exclusive ends of runs of True."""
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


class Slicer:
    """Cuts a recording at silences. ``slice(audio)`` returns the kept regions in samples."""

    def __init__(self, sr: int, config: SlicerConfig | None = None) -> None:
        cfg = config or SlicerConfig()
        self.sr = sr
        self.threshold = 10 ** (cfg.threshold_db / 20.0)
        self.hop = round(sr * cfg.hop_size_ms / 1000)
        self.win = min(round(sr * cfg.min_interval_ms / 1000), 4 * self.hop)
        self.min_length = round(sr * cfg.min_length_ms / 1000 / self.hop)
        self.min_interval = round(sr * cfg.min_interval_ms / 1000 / self.hop)
        self.max_sil_kept = round(sr * cfg.max_sil_kept_ms / 1000 / self.hop)
        self.max_length = None if cfg.max_length_ms is None else round(sr * cfg.max_length_ms / 1000 / self.hop)

    def silence_tags(self, rms: np.ndarray) -> list[tuple[int, int]]:
        """Frame ranges to remove, following the official per-frame state machine run by run."""
        tags: list[tuple[int, int]] = []
        clip_start = 0
        keep = self.max_sil_kept
        starts, ends = _silent_runs(rms < self.threshold)
        n = len(rms)
        for s, i in zip(starts.tolist(), ends.tolist(), strict=True):
            if i == n:  # trailing silence
                if n - s >= self.min_interval:
                    stop = min(n, s + keep)
                    tags.append((s + int(rms[s : stop + 1].argmin()), n + 1))
                break
            leading = s == 0 and i > keep
            middle = i - s >= self.min_interval and i - clip_start >= self.min_length
            if not leading and not middle:
                continue
            if i - s <= keep:
                pos = s + int(rms[s : i + 1].argmin())
                tags.append((0, pos) if s == 0 else (pos, pos))
                clip_start = pos
                continue
            pos_l = s + int(rms[s : s + keep + 1].argmin())
            pos_r = i - keep + int(rms[i - keep : i + 1].argmin())
            if s == 0:
                tags.append((0, pos_r))
                clip_start = pos_r
            elif i - s <= 2 * keep:
                pos = i - keep + int(rms[i - keep : s + keep + 1].argmin())
                tags.append((min(pos_l, pos), max(pos_r, pos)))
                clip_start = max(pos_r, pos)
            else:
                tags.append((pos_l, pos_r))
                clip_start = pos_r
        return tags

    def _split_long(self, begin: int, end: int, rms: np.ndarray) -> list[tuple[int, int]]:
        """Split a chunk of frames longer than ``max_length`` at its quietest frames."""
        if self.max_length is None:
            return [(begin, end)]
        out = []
        while end - begin > self.max_length:
            lo = begin + min(self.min_length, self.max_length // 2)
            hi = min(begin + self.max_length, end - min(self.min_length, self.max_length // 2))
            cut = lo + int(rms[lo : hi + 1].argmin()) if hi >= lo else begin + self.max_length
            out.append((begin, cut))
            begin = cut
        out.append((begin, end))
        return out

    def slice(self, audio: np.ndarray) -> list[Slice]:
        """Kept regions of a mono signal, in samples."""
        n_samples = len(audio)
        rms = rms_curve(audio, self.win, self.hop)
        n = len(rms)
        if n_samples <= self.min_length * self.hop:  # official: shorter than min_length -> the whole input
            frames = [(0, n)]
        else:
            tags = self.silence_tags(rms)
            bounds = [0] + [b for tag in tags for b in tag] + [n]
            frames = [(bounds[k], bounds[k + 1]) for k in range(0, len(bounds), 2) if bounds[k] < bounds[k + 1]]
        out = []
        for b, e in frames:
            for cb, ce in self._split_long(b, min(e, n), rms):
                start, end = cb * self.hop, min(n_samples, ce * self.hop)
                if end > start:
                    out.append(Slice(start, end))
        return out


def loudness_mix(chunk: np.ndarray, peak: float = 0.9, alpha: float = 0.25) -> np.ndarray:
    """The official per-slice gain: ``alpha`` of a ``peak``-normalised copy mixed with the rest of the original."""
    m = float(np.abs(chunk).max(initial=0.0))
    if m == 0.0:
        return chunk
    if m > 1.0:
        chunk, m = chunk / m, 1.0
    return (chunk / m * (peak * alpha) + (1.0 - alpha) * chunk).astype(np.float32)
