"""OpenAI's audio API on MockVox voices: request and response shapes, the model and voice a request names, the
encoded audio stream (chunked bytes or server-sent events).

The routes (:mod:`api.controllers.v1`, :mod:`api.controllers.stream_input`) keep the service's auth, limits,
tenancy and checks; only the shapes are OpenAI's. Errors on ``/v1`` come as ``{"error": {"message", "type",
"param", "code"}}`` (:func:`api.errors.error_response`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from api.errors import ApiError
from api.requests import Base, ChunkLength, FirstChunk, ModeChoice, SynthesisFields, SynthLanguage
from api.services import MODEL_ID_RE, MODEL_URI_RE
from mockvox.audio.encode import FORMATS
from mockvox.data.ids import FILE_ID_RE

log = logging.getLogger("api.stream")
AudioFormat = Literal[tuple(FORMATS)]  # type: ignore[valid-type]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")  # a registered model's name
INPUT_CHARS = 4096  # OpenAI's bound on `input`
MODEL_DOC = "m-<32 hex>, models:/NAME@ALIAS, models:/NAME/VERSION or a registered name"


class SpeechBody(SynthesisFields, **Base):
    """``POST /v1/audio/speech``: OpenAI's ``CreateSpeechRequest`` and MockVox's synthesis settings."""

    model: Annotated[str, Meta(min_length=1, max_length=300, description=MODEL_DOC)]
    input: Annotated[str, Meta(min_length=1, max_length=INPUT_CHARS, pattern=r"\S")]
    voice: Annotated[
        str | dict[str, str],
        Meta(description='a voice id, {"id": …}, a voice name, or the model itself (its own reference)'),
    ]
    response_format: AudioFormat = "mp3"
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: Annotated[str, Meta(max_length=INPUT_CHARS, description="accepted and ignored")] | None = None
    language: Annotated[SynthLanguage, Meta(description="language of `input`; auto detects")] = "auto"
    streaming_mode: ModeChoice | None = None
    first_chunk_length: FirstChunk | None = None
    min_chunk_length: ChunkLength | None = None


class VoiceOut(msgspec.Struct):
    id: str
    name: str
    created_at: int
    object: str = "audio.voice"
    transcript: str | None = None
    language: str | None = None
    seconds: float | None = None


class VoiceList(msgspec.Struct):
    data: list[VoiceOut]
    has_more: bool
    total: int
    object: str = "list"


class VoiceDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: str = "audio.voice.deleted"


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    version: str | None
    names: list[str]  # registry entries: models:/NAME/VERSION and models:/NAME@ALIAS
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    has_more: bool
    next_page_token: str | None = None
    object: str = "list"


def voice_out(info) -> VoiceOut:
    return VoiceOut(info.file_id, info.name or info.filename, int(info.created), transcript=info.text,
                    language=info.language, seconds=info.seconds)  # fmt: skip


def model_ref(model: str) -> str:
    """The model a request names, as the resolver takes it: an id or URI as is, a bare name as its latest version."""
    if MODEL_ID_RE.fullmatch(model) or MODEL_URI_RE.fullmatch(model):
        return model
    if NAME_RE.fullmatch(model):
        return f"models:/{model}/latest"
    raise ApiError(422, "invalid", "model: expected m-<32 hex>, models:/NAME@ALIAS, models:/NAME/VERSION or a "
                   "registered name", name="model")  # fmt: skip


def voice_id(voice: str | dict) -> str:
    if isinstance(voice, dict):
        if set(voice) != {"id"}:
            raise ApiError(422, "invalid", 'voice: an object must be {"id": "<voice id>"}', name="voice")
        return voice["id"]
    return voice


def speech_request(services, access, body) -> tuple[str, dict | None, dict]:
    """``(model_id, reference, params)`` of a ``/v1`` request, every part checked (404 / 422) before any work."""
    from api.requests import params_of
    from api.synthesis import checked_params

    ref_name = model_ref(body.model)
    from mockvox.infer.registry import ModelNotFound

    try:
        model_id = access.model(ref_name)
    except (ApiError, ModelNotFound) as exc:
        if isinstance(exc, ModelNotFound) or exc.status == 404:
            raise ApiError(404, "model_not_found", f"{body.model[:200]!r}", name="model") from None
        raise
    ref = voice_reference(services, access, voice_id(body.voice), body.model, model_id)
    return model_id, ref, checked_params(params_of(body))


def voice_reference(services, access, voice: str, model: str, model_id: str) -> dict | None:
    """The reference a voice names (None: the model's own): a reference id, a voice's name, or the model."""
    if voice in (model, model_id, f"models:/{model_id}", "default"):
        return None
    if FILE_ID_RE.fullmatch(voice):
        try:
            info = access.ref(voice, "voice")
        except ApiError as exc:
            raise ApiError(exc.status, exc.code, exc.detail, **{**exc.params, "name": "voice"}) from None
    else:
        info = next((i for i in access.refs(0, services.settings.limits.refs_per_key)[0] if i.name == voice), None)
        if info is None:
            why = "no voice of yours has this id or name; give a voice id, its name, or the model (its own voice)"
            raise ApiError(404, "ref_not_found", f"voice {voice[:100]!r}: {why}", name="voice")
    if not info.text:
        raise ApiError(422, "invalid", f"voice {info.file_id} has no transcript", name="voice")
    return {"audio": str(services.refs.audio(info.file_id)), "text": info.text, "language": info.language or "zh"}


async def sse_events(audio, input_chars: int, stats: dict):
    """OpenAI's speech events: ``speech.audio.delta`` per piece of audio (base64), then ``speech.audio.done``."""
    async for data in audio:
        event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
        yield f"data: {json.dumps(event)}\n\n".encode()
    usage = {"input_tokens": input_chars, "output_tokens": stats.get("tokens", 0),
             "total_tokens": input_chars + stats.get("tokens", 0)}  # fmt: skip
    yield f"data: {json.dumps({'type': 'speech.audio.done', 'usage': usage})}\n\n".encode()


def openai_error(status: int, code: str, text: str, param: str | None) -> dict[str, Any]:
    kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
    kind = "server_error" if status >= 500 else kinds.get(status, "invalid_request_error")
    return {"error": {"message": text, "type": kind, "param": param, "code": code}}
