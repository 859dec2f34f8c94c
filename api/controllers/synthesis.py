"""Synthesis: queued (/inference then /output) and streamed (/streamInference: one WAV header, then PCM)."""

from __future__ import annotations

import time

from anyio import to_thread
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import File, Stream

from api.access import Access
from api.controllers import TASK_ID, path_value
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.intake import check_callback
from api.openapi import body_operation, query_operation
from api.requests import InferenceBody, StreamQuery, parse
from api.schemas import Queued, error_responses
from api.services import enqueue, task_status
from api.state import Services
from api.synthesis import checked_request, chunks, encoded, stream_config
from api.uploads import read_body
from api.v1 import AudioFormat
from mockvox.audio.encode import EXTENSIONS, StreamEncoder, encode_all, media_type

OUTPUT_FORMAT = Parameter(default="wav", description="wav (as stored), mp3, opus, aac, flac or pcm")


class SynthesisController(Controller):
    tags = ["synthesis"]

    @post("/inference", status_code=200, operation_class=body_operation(InferenceBody),
          responses=error_responses(400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def inference(self, request: Request, services: Services, access: Access) -> Queued:
        """Queue a synthesis; the WAV is at /output/{task_id} once /tasks says SUCCESS."""
        settings = services.settings
        form = parse((await read_body(request, settings.uploads_dir, 1 << 20)).fields, InferenceBody)
        if form.callback_url:
            check_callback(form.callback_url, settings)
        model_id, ref, params = await to_thread.run_sync(checked_request, services, access, form)
        kwargs = {"model_id": model_id, "ref": ref, "target_text": form.target_text,
                  "target_language": form.target_language, "params": params}  # fmt: skip
        task_id = await enqueue(request, services, "infer", "mockvox.infer", kwargs, form.callback_url)
        return Queued(message("queued", lang_of(request)), task_id)

    @get("/output/{task_id:path}", responses={**error_responses(401, 404, 409, 410, 422)},
         media_type="audio/wav")  # fmt: skip
    async def output(self, services: Services, access: Access,
                     task_id: str = Parameter(schema_extra={"pattern": TASK_ID}),
                     format: AudioFormat = OUTPUT_FORMAT,
                     ) -> File | Response:  # fmt: skip
        """The synthesised audio of a finished /inference task: its WAV, or ``format`` encoded from it."""
        state = services
        record = await to_thread.run_sync(access.task, path_value(task_id))
        task_id = record.id
        if record.kind != "infer":
            raise ApiError(404, "no_output", f"task {task_id} is a {record.kind} task")
        status = (await to_thread.run_sync(task_status, state, record)).status
        if status != "SUCCESS":
            raise ApiError(409, "not_ready", state=status)
        path = state.settings.outputs_dir / f"{task_id}.wav"
        if not path.is_file() or time.time() - path.stat().st_mtime > state.settings.outputs_hours * 3600:
            raise ApiError(410, "gone", task_id)
        if format == "wav":
            return File(path, filename=f"{task_id}.wav", media_type="audio/wav", content_disposition_type="attachment")
        data, media = await to_thread.run_sync(_converted, path, format)
        name = f"{task_id}.{EXTENSIONS[format]}"
        return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @get("/streamInference", operation_class=query_operation(StreamQuery),  # Content-Type: the chosen format's
         responses=error_responses(400, 401, 404, 422, 503))  # fmt: skip
    async def stream(self, request: Request, services: Services, access: Access) -> Stream:
        """Stream a synthesis: a WAV header (sizes 0xFFFFFFFF), then 16-bit PCM as each chunk is decoded
        (``streaming_mode``: token by default, every 16-40 GPT tokens; fragment: per text fragment; whole)."""
        query = parse(dict(request.query_params.multi_items()), StreamQuery)  # a repeated name: its last value
        stream = stream_config(services.stream, query)
        model_id, ref, params = await to_thread.run_sync(checked_request, services, access, query)
        async with services.stream_slots:  # load and check under the same bound as the synthesis
            synth = await to_thread.run_sync(services.voices.get, model_id, True)  # pinned while it streams
            try:
                pieces = await to_thread.run_sync(chunks, synth, ref, query.target_text, query.target_language,
                                                  params, stream)  # fmt: skip
            except BaseException:
                services.voices.unpin(model_id)
                raise
            encoder = StreamEncoder(query.media_type, synth.sample_rate)
        audio = encoded(services, pieces, encoder, lambda: services.voices.unpin(model_id))
        return Stream(audio, media_type=encoder.media_type, headers={"Cache-Control": "no-cache",
                                                                     "X-Accel-Buffering": "no"})  # fmt: skip


def _converted(path, fmt: str) -> tuple[bytes, str]:
    from mockvox.audio.io import load_audio

    audio, sr = load_audio(path)
    return encode_all(audio, sr, fmt), media_type(fmt, sr)
