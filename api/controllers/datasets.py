"""Datasets: upload a recording, add another, revise the transcripts, read the manifest."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from api.access import Access
from api.controllers import FILE_ID, path_value
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.intake import CALLBACK, enqueue_upload, upload_body
from api.schemas import LANGUAGES, Field, Form, Queued, Revised, error_responses
from api.uploads import read_body

UPLOAD = Form(Field("file", "file", True, description="WAV / MP3 / FLAC / OGG recording"),
              Field("language", choices=LANGUAGES, default="zh", description="spoken language"),
              Field("denoise", "bool", default=True, description="denoise the slices"), CALLBACK)  # fmt: skip
ADD = Form(Field("file", "file", True, description="another recording of the same speaker"),
           Field("file_id", required=True, description="the dataset (from /upload)", pattern=FILE_ID),
           CALLBACK)  # fmt: skip
REVISION = Form(Field("file_id", required=True, pattern=FILE_ID), Field("results", "json", True, description=(
    'JSON list [{"key": "...", "text": "..."}]; keys not named keep their text')),
    Field("remove", "json", description="JSON list of slice keys to drop"))  # fmt: skip


class DatasetController(Controller):
    tags = ["datasets"]

    @post("/upload", status_code=200, operation_class=UPLOAD.operation(), responses=error_responses(
        400, 401, 413, 415, 422, 429, 503))  # fmt: skip
    async def upload(self, request: Request, access: Access) -> Queued:
        """Upload a recording: it is sliced, denoised and transcribed by a worker (progress in /tasks)."""
        from mockvox.data.ids import new_file_id

        body, values = await upload_body(request, UPLOAD)
        file_id = new_file_id()
        kwargs = {"file_id": file_id, "language": values["language"], "denoise": values["denoise"]}
        await to_thread.run_sync(access.own, "dataset", file_id)  # before any worker can make it
        return await enqueue_upload(request, body, values, "prepare", kwargs)

    @post("/add", status_code=200, operation_class=ADD.operation(), responses=error_responses(
        400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def add(self, request: Request, access: Access) -> Queued:
        """Add a recording to a dataset (same processing; its slices come after the earlier ones)."""
        body, values = await upload_body(request, ADD, lambda v: access.dataset(v["file_id"]))
        return await enqueue_upload(request, body, values, "add", {"file_id": values["file_id"]})

    @post("/revision", status_code=200, operation_class=REVISION.operation(), responses=error_responses(
        400, 401, 404, 409, 413, 415, 422))  # fmt: skip
    async def revision(self, request: Request, access: Access) -> Revised:
        """Correct transcripts (partial: keys not named keep theirs); a new dataset version."""
        settings = request.app.state.settings
        body = await read_body(request, settings.uploads_dir, 4 << 20)
        values = REVISION.parse(body.fields)
        file_id = await to_thread.run_sync(access.dataset, values["file_id"])
        results, remove = values["results"], values.get("remove") or []
        if isinstance(results, dict) and "results" in results:
            results = results["results"]
        if not isinstance(results, list) or not isinstance(remove, list):
            raise ApiError(422, "invalid", "results and remove must be JSON lists", name="results")
        if not all(isinstance(k, str) for k in remove):
            raise ApiError(422, "invalid", "remove must list slice keys (strings)", name="remove")
        pipeline = request.app.state.pipeline
        wait = settings.limits.lock_wait_s  # a dataset another change holds answers 409 busy, never waits for an hour
        result = await to_thread.run_sync(lambda: pipeline.revise(file_id, results, remove=remove, wait_s=wait))
        revised = set(result.new_keys)
        return Revised(True, message("revised", lang_of(request)), file_id, result.version,
                       [r for r in result.results if r["key"] in revised])  # fmt: skip

    @get("/datasets/{file_id:path}", responses=error_responses(401, 404, 422))
    async def dataset(self, request: Request, access: Access,
                      file_id: str = Parameter(schema_extra={"pattern": FILE_ID})) -> dict:  # fmt: skip
        """The dataset's manifest: version, slices with transcripts, paths (as `mockvox dataset`)."""
        file_id = await to_thread.run_sync(access.dataset, path_value(file_id))
        return await to_thread.run_sync(request.app.state.store.manifest, file_id)
