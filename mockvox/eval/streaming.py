"""What streaming costs in quality: a streamed clip against the whole decode of the same tokens and seed.

* spectral distance: mean absolute difference of natural-log mel spectrograms (80 bands, 10 ms hop), over the
  whole clip, within ``window`` seconds (50 ms) of every join, and away from the joins;
* clicks: the largest sample-to-sample jump within 1 ms of a join, beside the largest jump of the whole decode at
  the same places and the median jump of the streamed clip (a click is a join jump far above both);
* listening metrics (speaker similarity, DNSMOS, WER/CER) come from :mod:`mockvox.eval.metrics`, scored on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def log_mel(audio: np.ndarray, sr: int, n_mels: int = 80) -> np.ndarray:
    """``[frames, n_mels]`` log-mel power (10 ms hop, ~32 ms window), floor 1e-5."""
    import librosa

    n_fft = 1 << int(np.ceil(np.log2(0.032 * sr)))
    mel = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=sr, n_fft=n_fft, hop_length=sr // 100,
                                         n_mels=n_mels, center=True)  # fmt: skip
    return np.log(np.maximum(mel, 1e-5)).T


@dataclass(frozen=True)
class JoinQuality:
    """A streamed clip against the whole decode (see the module docstring)."""

    mel_l1: float  # log-mel L1 over the clip
    mel_l1_joins: float  # ... over the frames within the window of a join (nan without joins)
    mel_l1_away: float  # ... over the other frames
    join_jump: float  # largest |x[n+1] - x[n]| of the stream within 1 ms of a join (0 without joins)
    whole_jump: float  # the same for the whole decode at the same places
    median_jump: float  # median |x[n+1] - x[n]| of the stream
    joins: int
    length_diff: int  # samples: stream - whole

    @property
    def click_ratio(self) -> float:
        """Join jump over the median jump (what a click looks like: tens to hundreds)."""
        return self.join_jump / max(self.median_jump, 1e-9)

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "click_ratio": self.click_ratio}


def join_quality(streamed: np.ndarray, whole: np.ndarray, sr: int, joins: Sequence[int],
                 window: float = 0.05) -> JoinQuality:  # fmt: skip
    """Compare ``streamed`` with ``whole`` (both mono float at ``sr``); ``joins`` are the sample offsets where one
    chunk ends and the next begins."""
    n = min(len(streamed), len(whole))
    a, b = streamed[:n].astype(np.float64), whole[:n].astype(np.float64)
    ma, mb = log_mel(a, sr), log_mel(b, sr)
    frames = min(len(ma), len(mb))
    diff = np.abs(ma[:frames] - mb[:frames]).mean(axis=1)
    centre = np.arange(frames) * (sr // 100)
    near = np.zeros(frames, dtype=bool)
    for j in joins:
        near |= np.abs(centre - j) <= window * sr
    jumps_a, jumps_b = np.abs(np.diff(a)), np.abs(np.diff(b))
    around = max(1, sr // 1000)
    places = [slice(max(0, j - around), min(len(jumps_a), j + around)) for j in joins if 0 < j < n]
    join_jump = max((float(jumps_a[p].max()) for p in places if p.stop > p.start), default=0.0)
    whole_jump = max((float(jumps_b[p].max()) for p in places if p.stop > p.start), default=0.0)
    return JoinQuality(
        mel_l1=float(diff.mean()) if frames else 0.0,
        mel_l1_joins=float(diff[near].mean()) if near.any() else float("nan"),
        mel_l1_away=float(diff[~near].mean()) if (~near).any() else float("nan"),
        join_jump=join_jump,
        whole_jump=whole_jump,
        median_jump=float(np.median(jumps_a)) if len(jumps_a) else 0.0,
        joins=len(places),
        length_diff=len(streamed) - len(whole),
    )


def chunk_joins(chunks) -> list[int]:
    """Sample offsets where a chunk follows another within one fragment (fragment ends are not joins)."""
    return [c.offset for prev, c in zip(chunks, chunks[1:], strict=False) if not prev.final]
