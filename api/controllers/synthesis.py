"""Synthesis: queued (/inference then /output) and streamed (/streamInference: one WAV header, then PCM)."""

from __future__ import annotations

import time

from anyio import to_thread
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import File, Stream

from api.access import Access
from api.controllers import FILE_ID, MODEL_REF, TASK_ID, path_value
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.intake import CALLBACK, check_callback
from api.schemas import SYNTH_LANGUAGES, Field, Form, Queued, error_responses
from api.services import enqueue, task_status
from api.synthesis import checked_request, fragments, pcm_stream
from api.uploads import read_body

SPLITS = ("cut0", "cut1", "cut2", "cut3", "cut4", "cut5")
SAMPLING = (Field("top_p", "float", default=1.0, minimum=0.01, maximum=1),
            Field("top_k", "int", default=15, minimum=1, maximum=1000),
            Field("temperature", "float", default=1.0, minimum=0.01, maximum=10),
            Field("speed", "float", default=1.0, minimum=0.25, maximum=4),
            Field("repetition_penalty", "float", default=1.35, minimum=0.01, maximum=10),
            Field("seed", "int", description="-1 or absent: random", minimum=-1, maximum=2**62),
            Field("split", choices=SPLITS, default="cut1"),
            Field("sample_steps", "int", default=32, minimum=1, maximum=128, description="v4 only"),
            Field("max_tokens", "int", default=1500, minimum=1, maximum=1500, description="semantic tokens per "
                  "fragment at most (25 per second of speech)"))  # fmt: skip
PARAM_NAMES = tuple(f.name for f in SAMPLING)
INFERENCE = Form(Field("model_id", required=True, pattern=MODEL_REF), Field("ref_audio_file_id", description=(
    "from /uploadRef; absent: the voice's default reference"), pattern=FILE_ID), Field("ref_text", max_length=2000),
    Field("ref_language", choices=SYNTH_LANGUAGES, default="zh"), Field("target_text", required=True),
    Field("target_language", choices=SYNTH_LANGUAGES, default="zh"), *SAMPLING, CALLBACK)  # fmt: skip


class SynthesisController(Controller):
    tags = ["synthesis"]

    @post("/inference", status_code=200, operation_class=INFERENCE.operation(), responses=error_responses(
        400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def inference(self, request: Request, access: Access) -> Queued:
        """Queue a synthesis; the WAV is at /output/{task_id} once /tasks says SUCCESS."""
        settings = request.app.state.settings
        values = INFERENCE.parse((await read_body(request, settings.uploads_dir, 1 << 20)).fields)
        if values.get("callback_url"):
            check_callback(values["callback_url"], settings)
        model_id, ref, params = await to_thread.run_sync(checked_request, request.app.state, access, values,
                                                         PARAM_NAMES)  # fmt: skip
        kwargs = {"model_id": model_id, "ref": ref, "target_text": values["target_text"],
                  "target_language": values["target_language"], "params": params}  # fmt: skip
        task_id = await enqueue(request, "infer", "mockvox.infer", kwargs, values.get("callback_url"))
        return Queued(message("queued", lang_of(request)), task_id)

    @get("/output/{task_id:path}", responses={**error_responses(401, 404, 409, 410, 422)},
         media_type="audio/wav")  # fmt: skip
    async def output(self, request: Request, access: Access,
                     task_id: str = Parameter(schema_extra={"pattern": TASK_ID})) -> File:  # fmt: skip
        """The synthesised WAV of a finished /inference task."""
        state = request.app.state
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
        return File(path, filename=f"{task_id}.wav", media_type="audio/wav", content_disposition_type="attachment")

    @get("/streamInference", responses=error_responses(400, 401, 404, 422), media_type="audio/wav")
    async def stream(
        self,
        request: Request,
        access: Access,
        model_id: str = Parameter(schema_extra={"pattern": MODEL_REF}),
        target_text: str = Parameter(min_length=1, max_length=10000, description="at most limits.text_chars"),
        ref_audio_file_id: str | None = Parameter(default=None, schema_extra={"pattern": FILE_ID}),
        ref_text: str | None = Parameter(default=None, max_length=2000),
        ref_language: str = Parameter(default="zh", schema_extra={"enum": list(SYNTH_LANGUAGES)}),
        target_language: str = Parameter(default="zh", schema_extra={"enum": list(SYNTH_LANGUAGES)}),
        top_p: float = Parameter(default=1.0, ge=0.01, le=1),
        top_k: int = Parameter(default=15, ge=1, le=1000),
        temperature: float = Parameter(default=1.0, ge=0.01, le=10),
        speed: float = Parameter(default=1.0, ge=0.25, le=4),
        repetition_penalty: float = Parameter(default=1.35, ge=0.01, le=10),
        seed: int | None = Parameter(default=None, ge=-1, le=2**62),
        split: str = Parameter(default="cut1", schema_extra={"enum": list(SPLITS)}),
        sample_steps: int = Parameter(default=32, ge=1, le=128),
        max_tokens: int = Parameter(default=1500, ge=1, le=1500),
    ) -> Stream:
        """Stream a synthesis: a WAV header (sizes 0xFFFFFFFF), then 16-bit PCM as each text fragment is ready."""
        values = {k: v for k, v in locals().items() if k not in ("self", "request", "access")}
        for name, choices in (("ref_language", SYNTH_LANGUAGES), ("target_language", SYNTH_LANGUAGES),
                              ("split", SPLITS)):  # fmt: skip
            Field(name, choices=choices).parse(values[name])
        state = request.app.state
        model_id, ref, params = await to_thread.run_sync(checked_request, state, access, values, PARAM_NAMES)
        async with state.stream_slots:  # load and check under the same bound as the synthesis
            synth = await to_thread.run_sync(state.voices.get, model_id)
            pieces = await to_thread.run_sync(fragments, synth, ref, values["target_text"], target_language, params)
        return Stream(pcm_stream(state, synth.sample_rate, pieces), media_type="audio/wav",
                      headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
