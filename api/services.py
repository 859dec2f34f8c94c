"""What the controllers share: ids checked before use, the caller's identity, enqueueing, task status."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from datetime import UTC, datetime

import cachetools
from litestar import Request

from api.errors import ApiError
from api.records import Record, Records
from api.schemas import TaskOut
from api.settings import Settings

TASK_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MODEL_ID_RE = re.compile(r"^(?:models:/)?m-[0-9a-f]{32}$")
MODEL_URI_RE = re.compile(r"^models:/[A-Za-z0-9][A-Za-z0-9._-]{0,199}(?:@[A-Za-z0-9_-]{1,100}|/(?:\d{1,9}|latest))$")
FINISHED = ("SUCCESS", "FAILURE", "REVOKED")


def check_task_id(value: str) -> str:
    if not TASK_ID_RE.fullmatch(value or ""):
        raise ApiError(422, "invalid", f"task id {value[:80]!r} is not a task id (a UUID)", name="task_id")
    return value


def check_model_ref(value: str) -> str:
    """A model id (``m-<32 hex>``), ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; nothing else gets through."""
    if not isinstance(value, str) or not (MODEL_ID_RE.fullmatch(value) or MODEL_URI_RE.fullmatch(value)):
        raise ApiError(422, "invalid", f"model id {str(value)[:80]!r}: expected m-<32 hex>, models:/NAME@ALIAS or "
                       "models:/NAME/VERSION", name="model_id")  # fmt: skip
    return value


def check_file_id(value: str, name: str = "file_id") -> str:
    from mockvox.data.ids import InvalidIdError, validate_file_id

    try:
        return validate_file_id(value)
    except InvalidIdError as exc:
        raise ApiError(422, "invalid", str(exc), name=name) from None


def enqueue(request: Request, kind: str, name: str, kwargs: dict, callback_url: str | None = None) -> str:
    """Record and send a task; 429 past the caller's limit of unfinished tasks, 503 when the broker is down."""
    from kombu.exceptions import OperationalError

    from api.worker import send

    state = request.app.state
    settings: Settings = state.settings
    records: Records = state.records
    who = request.scope.get("mockvox_owner", "")
    if records.unfinished(who) >= settings.limits.queued_per_key:
        raise ApiError(429, "too_many", limit=settings.limits.queued_per_key)
    task_id = str(uuid.uuid4())
    records.add(task_id, kind, who, {k: v for k, v in kwargs.items() if k != "upload"}, callback_url)
    try:
        send(name, task_id, kwargs, state.celery)
    except (OperationalError, ConnectionError, OSError, RuntimeError) as exc:  # RuntimeError: Redis result store down
        records.finish(task_id)
        raise ApiError(503, "unavailable", f"the task queue is unreachable ({exc})") from None
    return task_id


def key_owner(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _iso(ts: float | datetime | None) -> str:
    if ts is None:
        ts = time.time()
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


_ENDED: cachetools.LRUCache = cachetools.LRUCache(maxsize=4096)  # final answers never change: polled ones are free
_ENDED_LOCK = threading.Lock()


def task_status(request: Request, record: Record) -> TaskOut:
    """The task's Celery state, with what only the records know: cancelled while queued, lost (no heartbeat)."""
    with _ENDED_LOCK:
        known = _ENDED.get(record.id)
    if known is not None:
        return known
    out = _task_status(request, record)
    if out.status in FINISHED and record.finished is not None:
        with _ENDED_LOCK:
            _ENDED[record.id] = out
    return out


def _task_status(request: Request, record: Record) -> TaskOut:
    from celery.result import AsyncResult

    state = request.app.state
    result = AsyncResult(record.id, app=state.celery)
    try:
        status, info = result.state, result.info
    except (ValueError, KeyError, TypeError) as exc:  # a result another version wrote: say so, do not fail
        status, info = "FAILURE", f"the task's stored result cannot be read ({exc})"
    progress, stage, results, error, when = 0.0, None, None, None, record.created
    if status == "PENDING" and record.cancel:
        status, error = "REVOKED", "cancelled"
    elif status in ("STARTED", "PROGRESS") and _lost(record, state.settings):
        status, error = "FAILURE", f"the worker stopped answering (no heartbeat for {state.settings.lost_after_s:g} s)"
        _mark_lost(state, record, error)
    elif status == "PROGRESS" and isinstance(info, dict):
        progress, stage = float(info.get("progress", 0.0)), info.get("stage")
    elif status == "SUCCESS":
        progress, results, when = 100.0, info if isinstance(info, dict) else {"value": info}, result.date_done
    elif status in ("FAILURE", "REVOKED"):
        error = info.get("error") if isinstance(info, dict) else str(info) if info else status.lower()
        when = result.date_done or when
    elif status == "STARTED":
        stage = "started"
    return TaskOut(record.id, record.kind, status, progress, stage, results, error, _iso(when))


def _lost(record: Record, settings: Settings) -> bool:
    return record.heartbeat is not None and time.time() - record.heartbeat > settings.lost_after_s


def _mark_lost(state, record: Record, error: str) -> None:
    """Write the loss down: the task FAILURE in Celery's backend, its training's MLflow runs KILLED."""
    try:
        state.celery.backend.mark_as_failure(record.id, RuntimeError(error))
    except Exception:  # the status answer stands even if the backend cannot be written now
        pass
    if record.run_id:
        try:
            state.registry.end_runs(record.run_id, "KILLED")
        except Exception:  # the tracking store may be away; the task's answer does not depend on it
            pass
    state.records.finish(record.id)
