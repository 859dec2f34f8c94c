"""What the controllers share: ids checked before use, the caller's identity, enqueueing, task status."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import cachetools
from anyio import to_thread
from litestar import Request

from api.errors import ApiError
from api.records import Record, Records
from api.schemas import TaskOut
from api.settings import Settings

TASK_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MODEL_ID_RE = re.compile(r"^(?:models:/)?m-[0-9a-f]{32}$")
MODEL_URI_RE = re.compile(r"^models:/[A-Za-z0-9][A-Za-z0-9._-]{0,199}(?:@[A-Za-z0-9_-]{1,100}|/(?:\d{1,9}|latest))$")
FINISHED = ("SUCCESS", "FAILURE", "REVOKED")
VERDICTS = {"lost": "the worker stopped answering (no heartbeat for {s:g} s)",
            "timeout": "the task ran past its hard time limit; its worker was restarted"}  # fmt: skip
log = logging.getLogger("api")


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


async def enqueue(request: Request, services, kind: str, name: str, kwargs: dict, callback_url: str | None = None,
                  spool: str | None = None) -> str:  # fmt: skip
    """Record and send a task off the event loop; 429 past the caller's limit of unfinished tasks, 503 when the
    broker does not take it (then nothing is recorded). ``spool``: the uploaded file the task consumes."""
    from api.auth import caller_of

    owner = caller_of(request).owner
    return await to_thread.run_sync(_enqueue, services, owner, kind, name, kwargs, callback_url, spool)


def _enqueue(state, owner: str, kind: str, name: str, kwargs: dict, callback_url: str | None, spool: str | None) -> str:
    from kombu.exceptions import OperationalError

    from api.worker import send

    settings: Settings = state.settings
    records: Records = state.records
    if records.unfinished(owner) >= settings.limits.queued_per_key:
        raise ApiError(429, "too_many", limit=settings.limits.queued_per_key)
    task_id = str(uuid.uuid4())
    records.add(task_id, kind, owner, {k: v for k, v in kwargs.items() if k != "upload"}, callback_url, spool)
    try:
        send(name, task_id, kwargs, state.celery)
    except (OperationalError, ConnectionError, OSError, RuntimeError, sqlalchemy_error()) as exc:
        records.remove(task_id)
        log.warning("task %s not queued: %s", task_id, exc)
        raise ApiError(503, "unavailable", "the task queue did not take the task; retry later") from None
    return task_id


def sqlalchemy_error() -> type[Exception]:
    """SQLAlchemy's base error (the sqlite broker raises it when its database is locked)."""
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def _iso(ts: float | datetime | None) -> str:
    if ts is None:
        ts = time.time()
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


_ENDED: cachetools.LRUCache = cachetools.LRUCache(maxsize=4096)  # final answers never change: polled ones are free
_ENDED_LOCK = threading.Lock()


def task_status(state, record: Record) -> TaskOut:
    """The task's Celery state, with what only the records know: cancelled while queued, lost (no heartbeat)."""
    with _ENDED_LOCK:
        known = _ENDED.get(record.id)
    if known is not None:
        return known
    out = _task_status(state, record)
    if out.status in FINISHED and record.finished is not None:
        with _ENDED_LOCK:
            _ENDED[record.id] = out
    return out


def _task_status(state, record: Record) -> TaskOut:
    from celery.result import AsyncResult

    result = AsyncResult(record.id, app=state.celery)
    try:
        status, info = result.state, result.info
    except Exception:  # a stored result Celery cannot rebuild (another version's, a class that cannot be made)
        status, info = "FAILURE", "the task failed (its stored error cannot be read)"
    progress, stage, results, error, when = 0.0, None, None, None, record.created
    if status == "PENDING" and record.cancel:
        status, error = "REVOKED", "cancelled"
    elif record.verdict in VERDICTS:  # decided by the sweeper or a time limit: final, whatever the worker says later
        status, error = "FAILURE", VERDICTS[record.verdict].format(s=state.settings.lost_after_s)
    elif status == "PROGRESS" and isinstance(info, dict):
        progress, stage = float(info.get("progress", 0.0)), info.get("stage")
    elif status == "SUCCESS":
        progress, results, when = 100.0, info if isinstance(info, dict) else {"value": info}, result.date_done
    elif status in ("FAILURE", "REVOKED"):
        error = _error_text(info) if info else status.lower()
        when = result.date_done or when
    elif status == "STARTED":
        stage = "started"
    return TaskOut(record.id, record.kind, status, progress, stage, results, error, _iso(when))


def cancel_task(state, record: Record) -> TaskOut:
    """Cancel a task: a queued one never runs and its spooled upload goes now; a running one is told to stop."""
    current = task_status(state, record)
    if current.status in FINISHED:
        return current
    state.records.request_cancel(record.id)
    if current.status == "PENDING":
        if record.spool:
            Path(record.spool).unlink(missing_ok=True)
        state.records.finish(record.id)  # it holds nothing now: its slot is free
    try:
        state.celery.control.revoke(record.id)
    except Exception:  # brokers without broadcast (sqlite): the worker reads the records' flag instead
        pass
    return task_status(state, state.records.get(record.id))


def _error_text(info) -> str:
    """A stored failure as text, whatever exception Celery rebuilt (some cannot print themselves, e.g. numpy's
    out-of-memory error rebuilt from its arguments)."""
    from api.errors import scrub

    if isinstance(info, dict):
        return scrub(str(info.get("error") or "failed"))
    if isinstance(info, MemoryError):
        return "out of memory"
    try:
        text = str(info)
    except Exception:
        text = " ".join(_safe_str(a) for a in getattr(info, "args", ())) or type(info).__name__
    return scrub(text)[:2000]


def _safe_str(value) -> str:
    try:
        return str(value)
    except Exception:
        return type(value).__name__


def sweep_lost(state) -> int:
    """Declare the tasks whose worker stopped sending heartbeats lost: FAILURE in Celery's backend, a training's
    MLflow runs KILLED, its callback sent. Decided once (a worker that comes back stores nothing after it)."""
    settings: Settings = state.settings
    lost = 0
    for record in state.records.silent(time.time() - settings.lost_after_s):
        if not state.records.finish(record.id, verdict="lost"):
            continue  # ended meanwhile
        lost += 1
        error = VERDICTS["lost"].format(s=settings.lost_after_s)
        log.warning("task %s lost: %s", record.id, error)
        try:
            state.celery.backend.mark_as_failure(record.id, RuntimeError(error))
            if record.callback_url:
                from api.worker import send

                payload = {"task_id": record.id, "kind": record.kind, "status": "FAILURE", "results": None,
                           "error": error}  # fmt: skip
                send("mockvox.callback", f"{record.id}-callback", {"url": record.callback_url, "payload": payload},
                     state.celery)  # fmt: skip
        except Exception as exc:  # the verdict stands in the records; the backend may be away now
            log.warning("task %s: the loss not written to the backend: %s", record.id, exc)
        if record.spool:  # its worker died holding it: nobody will consume it now
            Path(record.spool).unlink(missing_ok=True)
        if record.run_id:
            try:
                state.registry.end_runs(record.run_id, "KILLED")
            except Exception as exc:
                log.warning("task %s: its runs not ended: %s", record.id, exc)
    return lost


def sweep_spool(state, older_than_s: float = 3600) -> int:
    """Remove spooled uploads no unfinished task will consume (left by a process that died between spooling and
    queueing); returns how many."""
    in_use, cutoff, removed = state.records.spools(), time.time() - older_than_s, 0
    for path in state.settings.uploads_dir.glob("*.part"):
        try:
            if str(path) not in in_use and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # consumed meanwhile
            pass
    return removed


def delete_voice(state, model_id: str, keep_checkpoints: bool = False) -> None:
    """Delete a voice once: parallel deletes of the same voice queue on a lock, and all but the first find it gone
    (404). Its resident copies and cached download go too."""
    import shutil

    import filelock
    from mlflow.exceptions import MlflowException

    locks = state.settings.state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(locks / f"model-{model_id}.lock", timeout=60):
        try:
            state.registry.delete_voice(model_id, keep_checkpoints)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ApiError(404, "model_not_found", model_id) from None
            raise
    state.voices.forget(model_id)
    shutil.rmtree(state.voices.source.cache_dir / model_id, ignore_errors=True)


def check_page_token(token: str | None) -> str | None:
    """A token as /models hands out (MLflow's: base64 of a JSON object with an offset), else 422 naming it; MLflow
    itself lets a malformed one through as a 500."""
    import base64
    import binascii
    import json

    if not token:
        return None
    try:
        data = json.loads(base64.b64decode(token.encode("ascii"), validate=True))
    except (ValueError, RecursionError, binascii.Error):
        data = None
    shaped = isinstance(data, dict) and isinstance(data.get("experiment_ids"), list)
    offset = data.get("offset", 0) if shaped else None
    if type(offset) is not int or not 0 <= offset < 2**31:
        raise ApiError(422, "invalid", "page_token is not a token /models gave", name="page_token")
    return token
