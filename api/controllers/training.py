"""Training: a voice from a dataset, and more epochs for a trained one (a new model version; the old one stays)."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, post

from api.access import Access
from api.controllers import FILE_ID, MODEL_REF
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.intake import CALLBACK, check_callback
from api.schemas import Field, Form, Queued, error_responses
from api.services import enqueue
from api.uploads import read_body

EPOCHS = {"minimum": 1, "maximum": 1000}
OVERRIDES = Field("overrides", "json", description="JSON list of Hydra overrides from the server's allow-list")
TRAIN = Form(Field("file_id", required=True, pattern=FILE_ID), Field("epochs_sovits", "int", default=1, **EPOCHS),
             Field("epochs_gpt", "int", default=1, **EPOCHS), Field("version", choices=("v2", "v4"), default="v4"),
             Field("denoised", "bool", default=True, description="train on the denoised slices"), OVERRIDES,
             CALLBACK)  # fmt: skip
RESUME = Form(Field("model_id", required=True, pattern=MODEL_REF),
              Field("epochs_sovits", "int", default=2, **EPOCHS), Field("epochs_gpt", "int", default=2, **EPOCHS),
              OVERRIDES, CALLBACK)  # fmt: skip


def allowed_overrides(values: dict, allow) -> list[str]:
    """The request's overrides as the service writes them (typed values from the allow-list), else 422."""
    from api.overrides import OverrideError, checked_overrides

    try:
        return checked_overrides(values.get("overrides") or [], allow)
    except OverrideError as exc:
        raise ApiError(422, "invalid", str(exc), name="overrides") from None


async def _form(request: Request, form: Form) -> dict:
    settings = request.app.state.settings
    values = form.parse((await read_body(request, settings.uploads_dir, 1 << 20)).fields)
    if values.get("callback_url"):
        check_callback(values["callback_url"], settings)
    values["overrides"] = allowed_overrides(values, settings.train_allow)
    return values


class TrainingController(Controller):
    tags = ["training"]

    @post("/train", status_code=200, operation_class=TRAIN.operation(), responses=error_responses(
        400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def train(self, request: Request, access: Access) -> Queued:
        """Train a voice (checked before it is queued: dataset, version, epochs, enough speech)."""
        values = await _form(request, TRAIN)
        file_id = await to_thread.run_sync(access.dataset, values["file_id"])
        await to_thread.run_sync(request.app.state.check_speech, file_id, values["denoised"])
        kwargs = {k: values[k] for k in ("file_id", "epochs_sovits", "epochs_gpt", "version", "denoised", "overrides")}
        task_id = await enqueue(request, "train", "mockvox.train", kwargs, values.get("callback_url"))
        return Queued(message("queued", lang_of(request)), task_id, file_id)

    @post("/resume", status_code=200, operation_class=RESUME.operation(), responses=error_responses(
        400, 401, 404, 413, 415, 422, 429, 503))  # fmt: skip
    async def resume(self, request: Request, access: Access) -> Queued:
        """Train a voice N / M more epochs into a new model version."""
        values = await _form(request, RESUME)
        model_id = await to_thread.run_sync(access.model, values["model_id"])
        kwargs = {"model_id": model_id, "epochs_sovits": values["epochs_sovits"], "epochs_gpt": values["epochs_gpt"],
                  "overrides": values["overrides"]}  # fmt: skip
        task_id = await enqueue(request, "resume", "mockvox.resume", kwargs, values.get("callback_url"))
        return Queued(message("queued", lang_of(request)), task_id)
