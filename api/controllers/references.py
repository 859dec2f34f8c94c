"""Reference recordings for synthesis: upload (3-10 s, checked at once), list, read, delete."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter

from api.access import Access
from api.controllers import FILE_ID, options_for, path_value
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.intake import FORMATS, named_as
from api.openapi import body_operation
from api.requests import RefForm, parse
from api.schemas import Deleted, RefOut, RefPage, error_responses
from api.state import Services
from api.uploads import read_body


class ReferenceController(Controller):
    tags = ["references"]
    options = options_for("/refs/{ref_id:path}", "DELETE, GET, OPTIONS")

    @post("/uploadRef", status_code=200, operation_class=body_operation(RefForm, {"file": "3-10 s recording"}),
          responses=error_responses(400, 401, 413, 415, 422, 429))  # fmt: skip
    async def upload_ref(self, request: Request, services: Services, access: Access) -> RefOut:
        """Keep a reference recording; its header, then its duration are checked here, not at synthesis."""
        settings = services.settings
        body = await read_body(request, settings.uploads_dir, settings.limits.upload_bytes, ("file",))
        try:
            form = parse(body.fields, RefForm)
            if "file" not in body.files:
                raise ApiError(422, "missing", "file is required", name="file")
            name = body.filenames["file"]
            if not name.lower().endswith(FORMATS):
                raise ApiError(422, "format", f"file {name[:100]!r}")
            await to_thread.run_sync(access.ref_quota)
            with named_as(body.files["file"], name):
                info = await to_thread.run_sync(services.refs.add, body.files["file"], name, form.text, form.language,
                                                settings.audio, settings.limits.ref_rate)  # fmt: skip
            await to_thread.run_sync(access.own, "ref", info.file_id)
        finally:
            body.discard()
        return info

    @get("/refs", responses=error_responses(400, 401, 422))
    async def list_refs(self, access: Access, offset: int = Parameter(default=0, ge=0, le=10**9),
                        limit: int = Parameter(default=50, ge=1, le=500)) -> RefPage:  # fmt: skip
        """The caller's references, oldest first."""
        items, total = await to_thread.run_sync(access.refs, offset, limit)
        return RefPage(items, total, offset, limit)

    @get("/refs/{ref_id:path}", responses=error_responses(401, 404, 422))
    async def get_ref(self, access: Access, ref_id: str = Parameter(schema_extra={"pattern": FILE_ID})) -> RefOut:
        return await to_thread.run_sync(access.ref, path_value(ref_id))

    @delete("/refs/{ref_id:path}", status_code=200, responses=error_responses(401, 404, 422))
    async def delete_ref(self, request: Request, access: Access,
                         ref_id: str = Parameter(schema_extra={"pattern": FILE_ID})) -> Deleted:  # fmt: skip
        info = await to_thread.run_sync(access.ref, path_value(ref_id))
        if not await to_thread.run_sync(access.delete_ref, info.file_id):
            raise ApiError(404, "ref_not_found", info.file_id)  # deleted meanwhile by a parallel request
        return Deleted(message("deleted", lang_of(request)), info.file_id)
