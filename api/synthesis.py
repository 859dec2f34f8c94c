"""Synthesis for the service: the library's resident-voice cache, request parameters, WAV output and streaming."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from anyio import to_thread

from api.errors import ApiError
from api.settings import Settings

log = logging.getLogger("api.stream")

STREAM_UNKNOWN = 0xFFFFFFFF  # RIFF and data sizes of a stream of unknown length (libsndfile and ffmpeg read it all)


def infer_config(settings: Settings):
    from mockvox.config import compose

    return compose("infer", [f"paths.data_dir={settings.data_dir}", *settings.infer_overrides])


def voice_cache(settings: Settings):
    from mockvox.infer.voices import VoiceCache

    return VoiceCache.from_config(infer_config(settings))


def synthesis_params(params: dict):
    from api.requests import SYNTHESIS_NAMES
    from mockvox.infer.pipeline import SynthesisParams

    given = {k: v for k, v in params.items() if k in SYNTHESIS_NAMES and v is not None}
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


def checked_request(services, access, form) -> tuple[str, dict | None, dict]:
    """``(model_id, reference, params)`` of a synthesis request (:class:`~api.requests.StreamQuery`), every part
    checked (404 / 422) before any work; the voice and the reference must be the caller's."""
    from api.requests import params_of
    from mockvox.infer.pipeline import SynthesisError

    limit = services.settings.limits.text_chars
    if len(form.target_text) > limit:
        raise ApiError(422, "invalid", f"target_text is longer than {limit} characters", name="target_text")
    model_id = access.model(form.model_id)
    ref = None
    if form.ref_audio_file_id:
        info = access.ref(form.ref_audio_file_id, "ref_audio_file_id")
        text = form.ref_text or info.text
        if not text:
            raise ApiError(422, "missing", "ref_text is required (the reference has no stored transcript)",
                           name="ref_text")  # fmt: skip
        ref = {"audio": str(services.refs.audio(info.file_id)), "text": text,
               "language": form.ref_language or info.language or "zh"}  # fmt: skip
    params = params_of(form)
    try:
        synthesis_params(params).check()
    except SynthesisError as exc:
        raise ApiError(422, "invalid", str(exc), name="params") from None
    return model_id, ref, params


async def pcm_stream(state, sample_rate: int, pieces, release: Callable[[], None] | None = None):
    """Header first, then each fragment; an error after the first byte ends the stream (logged); a client that goes
    away stops the synthesis at the next fragment (this generator is closed). ``release`` runs when it ends."""
    yield wav_header(sample_rate)
    done, sent, finished = object(), 0, False
    try:
        while True:
            async with state.stream_slots:
                item = await to_thread.run_sync(next, pieces, done)
            if item is done:
                finished = True
                return
            yield pcm16(item[1])
            sent += 1
    except Exception as exc:
        finished = True
        log.error("stream ended early after %d fragment(s): %s", sent, exc)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
        if release is not None:
            release()
        if not finished:
            log.info("stream stopped after %d fragment(s): the client went away", sent)
