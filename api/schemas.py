"""Response bodies (msgspec structs); the request shapes are in :mod:`api.requests`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec


# --- responses -------------------------------------------------------------------------------------------------------
class ErrorBody(msgspec.Struct):
    detail: str
    code: str
    status: int


class OpenAIErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(msgspec.Struct):
    """Errors on the OpenAI-compatible routes (/v1)."""

    error: OpenAIErrorDetail


class Queued(msgspec.Struct):
    message: str
    task_id: str
    file_id: str | None = None


class Revised(msgspec.Struct):
    success: bool
    message: str
    file_id: str
    version: str
    asr: list[dict[str, Any]]


class RefOut(msgspec.Struct):
    file_id: str
    seconds: float
    sample_rate: int
    text: str | None
    language: str | None
    filename: str
    created: float
    name: str | None = None  # a voice's name (/v1/audio/voices)


class RefPage(msgspec.Struct):
    items: list[RefOut]
    total: int
    offset: int
    limit: int


class TaskOut(msgspec.Struct):
    task_id: str
    kind: str
    status: str  # PENDING STARTED PROGRESS SUCCESS FAILURE REVOKED
    progress: float
    stage: str | None
    results: dict[str, Any] | None
    error: str | None
    time: str


class ModelOut(msgspec.Struct):
    model_id: str
    version: str | None
    epochs: dict[str, Any]
    file_id: str | None
    dataset_version: str | None
    sample_rate: int | None
    created: int | None
    run_id: str | None
    registered: list[dict[str, Any]]
    metrics: dict[str, float | None]  # null: a metric without a value (NaN), e.g. no clip to score
    resumed_from: str | None = None


class ModelPage(msgspec.Struct):
    items: list[ModelOut]
    next_page_token: str | None


class Deleted(msgspec.Struct):
    message: str
    id: str


class Health(msgspec.Struct):
    status: str  # ok | degraded
    broker: bool
    tracking: bool
    records: bool
    workers: int | None  # None: the broker cannot be asked (sqlite)
    embedded_workers: int
    version: str


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The error answers an endpoint documents (all share :class:`ErrorBody`); 400 always (a malformed request)."""
    names = {400: "malformed request", 401: "API key missing or wrong", 404: "unknown id", 409: "not ready",
             410: "expired", 413: "body too large", 415: "unsupported media type", 422: "invalid parameter",
             429: "too many unfinished tasks", 503: "broker or store unreachable"}  # fmt: skip
    return {c: ResponseSpec(data_container=ErrorBody, description=names[c]) for c in sorted({400, *codes})}


def openai_error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """:func:`error_responses` in OpenAI's shape (the /v1 routes)."""
    return {c: ResponseSpec(data_container=OpenAIError, description=spec.description)
            for c, spec in error_responses(*codes).items()}  # fmt: skip
