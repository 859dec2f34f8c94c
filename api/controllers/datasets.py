"""Datasets: upload a recording, add another, revise the transcripts, read the manifest."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from api.access import Access
from api.controllers import FILE_ID, path_value
from api.errors import language as lang_of
from api.errors import message
from api.intake import enqueue_upload, upload_body
from api.openapi import body_operation
from api.requests import AddForm, RevisionBody, UploadForm, parse
from api.schemas import Queued, Revised, error_responses
from api.state import Services
from api.uploads import read_body

RECORDING = {"file": "WAV / MP3 / FLAC / OGG recording"}


class DatasetController(Controller):
    tags = ["datasets"]

    @post("/upload", status_code=200, operation_class=body_operation(UploadForm, RECORDING),
          responses=error_responses(400, 401, 413, 415, 422, 429, 503))  # fmt: skip
    async def upload(self, request: Request, services: Services, access: Access) -> Queued:
        """Upload a recording: it is sliced, denoised and transcribed by a worker (progress in /tasks)."""
        from mockvox.data.ids import new_file_id

        body, form = await upload_body(request, services, UploadForm)
        file_id = new_file_id()
        await to_thread.run_sync(access.own, "dataset", file_id)  # before any worker can make it
        kwargs = {"file_id": file_id, "language": form.language, "denoise": form.denoise}
        return await enqueue_upload(request, services, body, form.callback_url, "prepare", kwargs)

    @post("/add", status_code=200, operation_class=body_operation(AddForm, RECORDING),
          responses=error_responses(400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def add(self, request: Request, services: Services, access: Access) -> Queued:
        """Add a recording to a dataset (same processing; its slices come after the earlier ones)."""
        body, form = await upload_body(request, services, AddForm, lambda f: access.dataset(f.file_id))
        return await enqueue_upload(request, services, body, form.callback_url, "add", {"file_id": form.file_id})

    @post("/revision", status_code=200, operation_class=body_operation(RevisionBody),
          responses=error_responses(400, 401, 404, 409, 413, 415, 422))  # fmt: skip
    async def revision(self, request: Request, services: Services, access: Access) -> Revised:
        """Correct transcripts (partial: keys not named keep theirs); a new dataset version. A dataset another change
        holds answers 409 busy after ``limits.lock_wait_s``."""
        body = await read_body(request, services.settings.uploads_dir, 4 << 20)
        form = parse(body.fields, RevisionBody)
        file_id = await to_thread.run_sync(access.dataset, form.file_id)
        results = [{"key": item.key, "text": item.text} for item in form.results]
        wait = services.settings.limits.lock_wait_s
        result = await to_thread.run_sync(lambda: services.pipeline.revise(file_id, results, form.remove, wait))
        revised = set(result.new_keys)
        return Revised(True, message("revised", lang_of(request)), file_id, result.version,
                       [r for r in result.results if r["key"] in revised])  # fmt: skip

    @get("/datasets/{file_id:path}", responses=error_responses(401, 404, 422))
    async def dataset(self, services: Services, access: Access,
                      file_id: str = Parameter(schema_extra={"pattern": FILE_ID})) -> dict:  # fmt: skip
        """The dataset's manifest: version, slices with transcripts, paths (as `mockvox dataset`)."""
        file_id = await to_thread.run_sync(access.dataset, path_value(file_id))
        return await to_thread.run_sync(services.store.manifest, file_id)
