"""Training: a voice from a dataset, and more epochs for a trained one (a new model version; the old one stays)."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, post

from api.access import Access
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.intake import check_callback
from api.openapi import body_operation
from api.requests import ResumeBody, S, TrainBody, parse
from api.schemas import Queued, error_responses
from api.services import enqueue
from api.state import Services
from api.uploads import read_body


async def _form(request: Request, services: Services, shape: type[S]) -> tuple[S, list[str]]:
    """The request (checked before anything else) and its overrides as the service writes them."""
    from api.overrides import OverrideError, checked_overrides

    settings = services.settings
    form = parse((await read_body(request, settings.uploads_dir, 1 << 20)).fields, shape)
    if form.callback_url:
        check_callback(form.callback_url, settings)
    try:
        return form, checked_overrides(form.overrides or [], settings.train_allow)
    except OverrideError as exc:
        raise ApiError(422, "invalid", str(exc), name="overrides") from None


class TrainingController(Controller):
    tags = ["training"]

    @post("/train", status_code=200, operation_class=body_operation(TrainBody),
          responses=error_responses(400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def train(self, request: Request, services: Services, access: Access) -> Queued:
        """Train a voice (checked before it is queued: dataset, version, epochs, overrides, enough speech)."""
        form, overrides = await _form(request, services, TrainBody)
        file_id = await to_thread.run_sync(access.dataset, form.file_id)
        await to_thread.run_sync(services.check_speech, file_id, form.denoised)
        kwargs = {"file_id": file_id, "epochs_sovits": form.epochs_sovits, "epochs_gpt": form.epochs_gpt,
                  "version": form.version, "denoised": form.denoised, "overrides": overrides}  # fmt: skip
        task_id = await enqueue(request, services, "train", "mockvox.train", kwargs, form.callback_url)
        return Queued(message("queued", lang_of(request)), task_id, file_id)

    @post("/resume", status_code=200, operation_class=body_operation(ResumeBody),
          responses=error_responses(400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def resume(self, request: Request, services: Services, access: Access) -> Queued:
        """Train a voice N / M more epochs into a new model version."""
        form, overrides = await _form(request, services, ResumeBody)
        model_id = await to_thread.run_sync(access.model, form.model_id)
        kwargs = {"model_id": model_id, "epochs_sovits": form.epochs_sovits, "epochs_gpt": form.epochs_gpt,
                  "overrides": overrides}  # fmt: skip
        task_id = await enqueue(request, services, "resume", "mockvox.resume", kwargs, form.callback_url)
        return Queued(message("queued", lang_of(request)), task_id)
