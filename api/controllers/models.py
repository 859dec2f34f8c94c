"""Voices (MLflow logged models): information, a paged list, deletion."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, delete, get
from litestar.params import Parameter

from api.access import Access
from api.controllers import MODEL_REF, options_for, path_value
from api.errors import language as lang_of
from api.errors import message
from api.schemas import Deleted, ModelOut, ModelPage, error_responses
from api.services import delete_voice
from api.state import Services


def _out(info: dict) -> ModelOut:
    return ModelOut(**{k: info.get(k) for k in ModelOut.__struct_fields__ if k in info})


KEEP_CHECKPOINTS = Parameter(default=False, description="keep the training checkpoints (they can rebuild the voice)")


class ModelController(Controller):
    tags = ["models"]
    options = options_for("/model/{model_id:path}", "DELETE, GET, OPTIONS")

    @get("/model/{model_id:path}", responses=error_responses(401, 404, 422))
    async def info(self, services: Services, access: Access,
                   model_id: str = Parameter(schema_extra={"pattern": MODEL_REF})) -> ModelOut:  # fmt: skip
        """Version, epochs per stage, dataset and its DVC version, metrics, registry entries (no weights loaded)."""
        from mockvox.infer.registry import model_info

        resolved = await to_thread.run_sync(access.model, path_value(model_id))
        return _out(await to_thread.run_sync(model_info, services.registry, resolved))

    @get("/models", responses=error_responses(400, 401, 422))
    async def list_models(self, services: Services, access: Access, limit: int = Parameter(default=50, ge=1, le=500),
                          page_token: str | None = Parameter(default=None, max_length=2000)) -> ModelPage:  # fmt: skip
        """The caller's voices, newest first; ``next_page_token`` gives the next page."""
        from api.synthesis import voice_page
        from mockvox.infer.registry import summary

        items, token = await voice_page(services, access, limit, page_token, lambda r, m: _out(summary(r, m)))
        return ModelPage(items, token)

    @delete("/model/{model_id:path}", status_code=200, responses=error_responses(401, 404, 422))
    async def remove(self, request: Request, services: Services, access: Access,
                     model_id: str = Parameter(schema_extra={"pattern": MODEL_REF}),
                     keep_checkpoints: bool = KEEP_CHECKPOINTS) -> Deleted:  # fmt: skip
        """Delete a voice: its registry versions, the logged model and its artifacts, its runs' training checkpoints
        (unless ``keep_checkpoints``); resident copies are dropped. A second delete answers 404."""
        resolved = await to_thread.run_sync(access.model, path_value(model_id))
        await to_thread.run_sync(delete_voice, services, resolved, keep_checkpoints)
        return Deleted(message("deleted", lang_of(request)), resolved)
