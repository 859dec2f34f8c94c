"""OpenAI-compatible routes: speech from a MockVox voice, the voices (references) a client makes, the models."""

from __future__ import annotations

import threading
from typing import Annotated, Literal

import msgspec
from anyio import to_thread
from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter
from litestar.response import Stream
from msgspec import Meta

from api.access import Access
from api.controllers import FILE_ID, options_for, path_value
from api.errors import ApiError
from api.intake import named_as
from api.openapi import body_operation
from api.requests import Base, Language, parse
from api.schemas import openai_error_responses
from api.state import Services
from api.uploads import read_body
from api.v1 import (
    ModelCard,
    ModelList,
    SpeechBody,
    VoiceDeleted,
    VoiceList,
    VoiceOut,
    speech_request,
    sse_events,  # fmt: skip
    voice_out,
)
from mockvox.audio.encode import StreamEncoder

_ASR_LOCK = threading.Lock()  # one transcription at a time in the API process


class VoiceForm(msgspec.Struct, **Base):
    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
    transcript: (
        Annotated[str, Meta(max_length=2000, description="what the sample says; absent: transcribed")] | None
    ) = None
    language: Annotated[Language, Meta(description="the sample's language; absent: detected")] | None = None
    consent: Annotated[str, Meta(max_length=200, description="accepted and ignored (OpenAI's consent id)")] | None = (
        None
    )
    type: Literal["audio_sample"] = "audio_sample"


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]
    options = options_for("/audio/voices", "GET, OPTIONS, POST")

    @post("/audio/speech", status_code=200, operation_class=body_operation(SpeechBody),
          responses=openai_error_responses(400, 401, 404, 413, 415, 422, 503))  # fmt: skip
    async def speech(self, request: Request, services: Services, access: Access) -> Stream:
        """Speech in a MockVox voice, streamed as it is decoded: the audio bytes (chunked) or, with
        ``stream_format=sse``, ``speech.audio.delta`` / ``speech.audio.done`` events. ``instructions`` is ignored."""
        from api.synthesis import chunks, encoded, stream_config

        fields = (await read_body(request, services.settings.uploads_dir, 1 << 20)).fields
        body = parse(fields, SpeechBody)
        stream_cfg = stream_config(services.stream, body)
        model_id, ref, params = await to_thread.run_sync(speech_request, services, access, body)
        async with services.stream_slots:
            synth = await to_thread.run_sync(services.voices.get, model_id, True)
            try:
                pieces = await to_thread.run_sync(chunks, synth, ref, body.input, body.language, params, stream_cfg)
                encoder = StreamEncoder(body.response_format, synth.sample_rate)
            except BaseException:
                services.voices.unpin(model_id)
                raise
        stats: dict = {}
        audio = encoded(services, pieces, encoder, lambda: services.voices.unpin(model_id), stats)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        if body.stream_format == "sse":
            return Stream(sse_events(audio, len(body.input), stats), media_type="text/event-stream", headers=headers)
        return Stream(audio, media_type=encoder.media_type, headers=headers)

    @post("/audio/voices", status_code=200,
          operation_class=body_operation(VoiceForm, {"audio_sample": "3-10 s recording"}),
          responses=openai_error_responses(400, 401, 413, 415, 422, 429))  # fmt: skip
    async def create_voice(self, request: Request, services: Services, access: Access) -> VoiceOut:
        """A voice from a 3-10 s sample (checked as /uploadRef); without ``transcript`` Whisper writes it (and
        detects the language when none is given)."""
        settings = services.settings
        body = await read_body(request, settings.uploads_dir, settings.limits.upload_bytes, ("audio_sample",))
        try:
            form = parse(body.fields, VoiceForm)
            if "audio_sample" not in body.files:
                raise ApiError(422, "missing", "audio_sample is required", name="audio_sample")
            filename = body.filenames["audio_sample"] or "audio_sample"
            await to_thread.run_sync(access.ref_quota)
            spool = body.files["audio_sample"]
            with named_as(spool, filename):
                info = await to_thread.run_sync(services.refs.add, spool, filename, form.transcript, form.language,
                                                settings.audio, settings.limits.ref_rate, form.name)  # fmt: skip
            if not info.text:
                try:
                    info = await to_thread.run_sync(_transcribe, services, info)
                except BaseException:
                    services.refs.delete(info.file_id)
                    raise
            await to_thread.run_sync(access.own, "ref", info.file_id)
        finally:
            body.discard()
        return voice_out(info)

    @get("/audio/voices", responses=openai_error_responses(400, 401, 422))
    async def list_voices(self, access: Access, limit: int = Parameter(default=50, ge=1, le=500),
                          offset: int = Parameter(default=0, ge=0, le=10**9)) -> VoiceList:  # fmt: skip
        """The caller's voices (and references), oldest first."""
        items, total = await to_thread.run_sync(access.refs, offset, limit)
        return VoiceList([voice_out(i) for i in items], offset + len(items) < total, total)

    @delete("/audio/voices/{voice_id:path}", status_code=200, responses=openai_error_responses(401, 404, 422))
    async def delete_voice(self, access: Access,
                           voice_id: str = Parameter(schema_extra={"pattern": FILE_ID})) -> VoiceDeleted:  # fmt: skip
        info = await to_thread.run_sync(access.ref, path_value(voice_id), "voice_id")
        if not await to_thread.run_sync(access.delete_ref, info.file_id):
            raise ApiError(404, "ref_not_found", info.file_id)
        return VoiceDeleted(info.file_id)

    @get("/models", responses=openai_error_responses(400, 401, 422))
    async def models(self, services: Services, access: Access, limit: int = Parameter(default=50, ge=1, le=500),
                     page_token: str | None = Parameter(default=None, max_length=2000)) -> ModelList:  # fmt: skip
        """The caller's voices as OpenAI models (id: the model id; ``names``: its registry entries), newest first."""
        from api.synthesis import voice_page

        cards, token = await voice_page(services, access, limit, page_token, _card)
        return ModelList(cards, token is not None, token)


def _card(registry, logged) -> ModelCard:
    from mockvox.infer.registry import registered_versions

    names = [f"models:/{v['name']}/{v['version']}" for v in registered_versions(registry, logged.model_id)]
    names += [f"models:/{v['name']}@{a}" for v in registered_versions(registry, logged.model_id) for a in v["aliases"]]
    version = dict(logged.params or {}).get("version")
    return ModelCard(logged.model_id, int((logged.creation_timestamp or 0) // 1000), "mockvox", version, names)


def _transcribe(services: Services, info):
    """The reference's transcript (and language) by the service's Whisper; 422 when it hears nothing usable."""
    from mockvox.audio.io import load_audio, resample

    audio, sr = load_audio(services.refs.audio(info.file_id))
    with _ASR_LOCK:
        try:
            text, language = services.pipeline.transcriber.transcribe_detect(resample(audio, sr, 16000), info.language)
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc), name="language") from None
    if not text.strip():
        raise ApiError(422, "invalid", "no speech was heard in audio_sample; give its transcript", name="transcript")
    return services.refs.update(info.file_id, text=text, language=language)
