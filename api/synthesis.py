"""Synthesis for the service: the library's resident-voice cache, request parameters, WAV output and streaming."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from api.settings import Settings

STREAM_UNKNOWN = 0xFFFFFFFF  # RIFF and data sizes of a stream of unknown length (libsndfile and ffmpeg read it all)
PARAMS = ("top_k", "top_p", "temperature", "repetition_penalty", "speed", "seed", "split", "sample_steps",
          "noise_scale", "fragment_interval", "max_tokens")  # fmt: skip


def infer_config(settings: Settings):
    from mockvox.config import compose

    return compose("infer", [f"paths.data_dir={settings.data_dir}", *settings.infer_overrides])


def voice_cache(settings: Settings):
    from mockvox.infer.voices import VoiceCache

    return VoiceCache.from_config(infer_config(settings))


def synthesis_params(params: dict):
    from mockvox.infer.pipeline import SynthesisParams

    given = {k: v for k, v in params.items() if k in PARAMS and v is not None}
    if given.get("seed") is not None and int(given["seed"]) < 0:
        given["seed"] = None
    return SynthesisParams(**given)


def _reference(ref: dict | None) -> tuple:
    if not ref:
        return None, None, None
    return ref["audio"], ref.get("text"), ref.get("language")


def render(cache, settings: Settings, task_id: str, model_id: str, ref: dict | None, text: str, language: str,
           params: dict, progress: Callable[[int, int], None] | None = None) -> tuple[Path, int, float]:  # fmt: skip
    """Synthesise and write ``outputs/{task_id}.wav`` atomically: ``(path, sample rate, seconds)``."""
    from mockvox.audio.io import write_wav

    synth = cache.get(model_id)
    sr, audio = synth.synthesize(*_reference(ref), text, language, synthesis_params(params), progress)
    path = write_wav(settings.outputs_dir / f"{task_id}.wav", audio, sr)
    return path, sr, round(len(audio) / sr, 3)


def wav_header(sample_rate: int, data_size: int = STREAM_UNKNOWN) -> bytes:
    """44-byte PCM16 mono header; sizes 0xFFFFFFFF when the length is not known (streaming)."""
    riff = STREAM_UNKNOWN if data_size == STREAM_UNKNOWN else 36 + data_size
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate,
            sample_rate * 2, 2, 16) + b"data" + struct.pack("<I", data_size))  # fmt: skip


def pcm16(audio: np.ndarray) -> bytes:
    from mockvox.audio.io import to_int16

    return to_int16(audio).astype("<i2").tobytes()


def fragments(synth, ref: dict | None, text: str, language: str, params: dict) -> Iterator[tuple[int, np.ndarray]]:
    """The request checked (raises before any audio), then ``(sample rate, audio)`` per text fragment."""
    return synth.fragments(*_reference(ref), text, language, synthesis_params(params))
