"""Preprocessing cost on this machine: slicer on 10 minutes of 32 kHz audio, denoise and ASR real-time factors.

Run: ``python benchmarks/bench_preprocess.py [--asr-model base] [--models-dir pretrained]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mockvox.audio.denoise import DenoiseConfig, denoise
from mockvox.audio.io import load_audio, resample
from mockvox.audio.slicer import Slicer
from mockvox.data.asr import AsrConfig, Transcriber

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "voice_en.ogg"
SR = 32000


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asr-model", default="base")
    parser.add_argument("--models-dir", default=None, help="Whisper models folder (default: the MockVox home's)")
    args = parser.parse_args()
    speech, _ = load_audio(SAMPLE, SR)
    ten_min = np.resize(speech, 600 * SR)  # the sample repeated: speech with real pauses
    slicer = Slicer(SR)
    cold = best_of(1, lambda: slicer.slice(ten_min))
    warm = best_of(3, lambda: slicer.slice(ten_min))
    print(f"slicer   10 min @ 32 kHz: {warm:.3f} s (first call {cold:.3f} s), {len(slicer.slice(ten_min))} slices")
    minute = ten_min[: 60 * SR]
    for stationary in (True, False):
        t = best_of(2, lambda s=stationary: denoise(minute, SR, DenoiseConfig(stationary=s)))
        print(f"denoise  spectral gate stationary={stationary}: RTF {t / 60:.4f} ({t:.2f} s per minute)")
    transcriber = Transcriber(AsrConfig(model=args.asr_model, models_dir=args.models_dir))
    clips = [speech[p.start : p.end] for p in slicer.slice(speech)]
    audio16 = [resample(c, SR, 16000) for c in clips]
    transcriber.transcribe(audio16[0], "en")  # load + warm up
    seconds = sum(len(c) for c in clips) / SR
    t = best_of(1, lambda: [transcriber.transcribe(a, "en") for a in audio16])
    print(f"asr      whisper {args.asr_model} int8 CPU: RTF {t / seconds:.3f} ({seconds:.1f} s of speech in {t:.2f} s)")


if __name__ == "__main__":
    main()
