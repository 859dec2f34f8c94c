"""Synthesis for the service: the library's resident-voice cache, request parameters, WAV output and the encoded
stream every streaming route sends."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from anyio import to_thread

from api.errors import ApiError
from api.settings import Settings
from mockvox.audio.encode import StreamEncoder

log = logging.getLogger("api.stream")


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


def stream_defaults(cfg):
    """The ``stream`` section of the infer config as a :class:`~mockvox.infer.streaming.StreamConfig`."""
    from omegaconf import OmegaConf

    from mockvox.infer.streaming import StreamConfig

    return StreamConfig.from_mapping(OmegaConf.to_container(cfg.get("stream") or {}, resolve=True))


def stream_config(defaults, query):
    """The server's stream defaults with what the query chose (its mode, first and chunk lengths)."""
    from mockvox.infer.streaming import StreamConfig

    base = {f: getattr(defaults, f) for f in defaults.__dataclass_fields__} if defaults is not None else {}
    try:
        return StreamConfig.from_mapping(base, mode=query.streaming_mode, first_tokens=query.first_chunk_length,
                                         chunk_tokens=query.min_chunk_length)  # fmt: skip
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), name="streaming_mode") from None


def chunks(synth, ref: dict | None, text: str, language: str, params: dict, stream) -> Iterator:
    """The request checked (raises before any audio), then its :class:`~mockvox.infer.streaming.AudioChunk` s."""
    return synth.stream(*_reference(ref), text, language, synthesis_params(params), stream)


def checked_request(services, access, form) -> tuple[str, dict | None, dict]:
    """``(model_id, reference, params)`` of a synthesis request (:class:`~api.requests.StreamQuery`), every part
    checked (404 / 422) before any work; the voice and the reference must be the caller's."""
    from api.requests import params_of

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
    return model_id, ref, checked_params(params_of(form))


def checked_params(params: dict) -> dict:
    """A request's synthesis parameters, checked together by the library (422 naming the problem)."""
    from mockvox.infer.pipeline import SynthesisError

    try:
        synthesis_params(params).check()
    except SynthesisError as exc:
        raise ApiError(422, "invalid", str(exc), name="params") from None
    return params


async def voice_page(services, access, limit: int, page_token: str | None, item: Callable) -> tuple[list, str | None]:
    """One page of the caller's voices (newest first) as ``item(registry, logged model)``, and the next token."""
    from mlflow.exceptions import MlflowException

    from api.services import check_page_token
    from mockvox.infer.registry import voice_models

    registry, start = services.registry, check_page_token(page_token)

    def page():
        models, token = voice_models(registry, limit, start, access.model_filter)
        return [item(registry, m) for m in models], token

    try:
        return await to_thread.run_sync(page)
    except MlflowException as exc:
        raise ApiError(422, "invalid", f"page_token: {exc.message[:200]}", name="page_token") from None


async def encoded(state, pieces, encoder: StreamEncoder, release=None, stats: dict | None = None):
    """The encoded bytes of a synthesis as each chunk is decoded (``b""`` never yielded); an error after the first
    byte ends the stream (logged); a client that goes away stops the synthesis at the next chunk (this generator
    is closed). ``stats`` gets ``chunks``, ``tokens`` (semantic tokens), ``seconds``."""
    done, sent, finished = object(), 0, False
    stats = stats if stats is not None else {}
    stats.update(chunks=0, tokens=0, seconds=0.0)
    try:
        while True:
            async with state.stream_slots:
                item = await to_thread.run_sync(next, pieces, done)
            if item is done:
                tail = await to_thread.run_sync(encoder.finish)
                if tail:
                    yield tail
                finished = True
                return
            if sent == 0 and log.isEnabledFor(logging.DEBUG):
                log.debug("first audio after %.3f s (%s)", item.elapsed, item.timing)
            stats["chunks"] += 1
            stats["seconds"] += item.seconds
            if item.final:
                stats["tokens"] += item.tokens
            data = await to_thread.run_sync(encoder.encode, item.audio) if encoder.format.container else \
                encoder.encode(item.audio)  # fmt: skip
            sent += 1
            if data:
                yield data
    except Exception as exc:
        finished = True
        log.error("stream ended early after %d chunk(s): %s", sent, exc)
    finally:
        encoder.close()
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # here, not in a thread: the task may be cancelled (the client left); the generator is suspended
        if release is not None:
            release()
        if not finished:
            log.info("stream stopped after %d chunk(s): the client went away", sent)
