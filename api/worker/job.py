"""The life of one task in a worker: progress, heartbeats, cancellation, time limits, its one final state and its
callback (sent as a task of its own once that state is stored)."""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager

from celery import signals, states
from celery.exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded

from api.callbacks import CallbackFailed, deliver
from api.records import Records
from api.settings import Settings, env_settings
from api.worker import app

log = logging.getLogger("api.worker")


@functools.cache
def settings() -> Settings:
    return getattr(app.conf, "mockvox_settings", None) or env_settings()


@functools.cache
def records() -> Records:
    return Records(settings().records)


class TaskTimeLimit(Exception):
    """A task ran past its queue's soft time limit (``time_limits``): it stops at its next step."""


_CALLBACKS: dict[str, tuple[str, dict]] = {}  # task id -> (url, payload), sent once the task's final state is stored


class Job:
    """One running task: progress into Celery's state, heartbeats, the cancel flag and verdict from the records,
    and its queue's time limits."""

    def __init__(self, task, kind: str):
        self.task, self.kind, self.id = task, kind, task.request.id
        self.records = records()
        self._stop = threading.Event()
        self._checked, self._cancel, self._lost, self._expired = 0.0, False, False, False

    def owner_tags(self) -> dict[str, str]:
        """The MLflow tags that make a voice its requester's (:mod:`api.access`)."""
        from api.access import OWNER_TAG

        record = self.records.get(self.id)
        return {OWNER_TAG: record.owner} if record is not None else {}

    def progress(self, percent: float, stage: str, **info) -> None:
        if self._expired:
            raise TaskTimeLimit(self._limit_text())
        if self.cancelled() and self._lost:  # declared lost while it was paused: its end is decided, write nothing
            raise TaskTimeLimit("the task was declared lost (no heartbeat) and stops")
        meta = {"progress": round(max(0.0, min(100.0, percent)), 1), "stage": stage, **info}
        self.task.update_state(state="PROGRESS", meta=meta)

    def cancelled(self) -> bool:
        import time

        now = time.monotonic()
        if not (self._cancel or self._lost) and now - self._checked >= 1.0:  # the records once a second at most
            self._checked = now
            record = self.records.get(self.id)
            self._cancel = bool(record and record.cancel)
            self._lost = bool(record and record.verdict == "lost")
        return self._cancel or self._lost or self._expired

    def _beat(self) -> None:
        while not self._stop.wait(settings().heartbeat_s):
            try:
                self.records.beat(self.id)
            except Exception as exc:  # a records hiccup must not stop the work
                log.warning("heartbeat of %s failed: %s", self.id, exc)

    def _limits(self) -> tuple[float, float]:
        from api.worker import ROUTES

        return settings().time_limits.get(ROUTES.get(self.task.name, ""), (0.0, 0.0))

    def _limit_text(self) -> str:
        return f"the task ran past its time limit ({self._limits()[0]:g} s)"

    def _watch(self, soft: float, hard: float) -> None:
        """Soft limit: the task stops at its next step (FAILURE). Hard limit: the process ends (a task stuck in one
        call cannot be interrupted otherwise); the supervisor starts a new worker."""
        if soft and self._stop.wait(soft):
            return
        self._expired = True
        if hard and not self._stop.wait(max(0.0, hard - soft)):
            import os

            text = f"the task ran past its hard time limit ({hard:g} s); its worker was restarted"
            log.error("task %s: %s", self.id, text)
            if self.records.finish(self.id, verdict="timeout"):
                self.task.backend.mark_as_failure(self.id, RuntimeError(text))
                self._queue_callback(states.FAILURE, None, text)
                _send_callback(self.id)
            os._exit(70)

    @contextmanager
    def running(self):
        record = self.records.get(self.id)
        if record is not None and record.cancel:
            self._revoked("cancelled before it started")
        self.records.beat(self.id)
        threading.Thread(target=self._beat, name=f"heartbeat-{self.id}", daemon=True).start()
        soft, hard = self._limits()
        if soft or hard:
            threading.Thread(target=self._watch, args=(soft or hard, hard), name="time-limit", daemon=True).start()
        try:
            yield self
        except BaseException as exc:
            self._stop.set()
            self._failed(exc)
        self._stop.set()

    def _failed(self, exc: BaseException) -> None:
        from mockvox.train.tracking import TrainingCancelled

        text = self._limit_text() if self._expired else task_error(exc)
        if isinstance(exc, TrainingCancelled) and not self._expired and not self._lost:
            self._finish(states.REVOKED, None, text)
            self.task.backend.mark_as_revoked(self.id, text, request=self.task.request)
            raise Ignore() from exc
        self._finish(states.FAILURE, None, text)
        if isinstance(exc, Exception):  # stored as plain text: any reader can turn it back into a message
            raise RuntimeError(text) from None
        raise exc

    def _revoked(self, reason: str) -> None:
        """End as REVOKED (stored as Celery stores a revocation: a ``TaskRevokedError`` with the reason)."""
        self.task.backend.mark_as_revoked(self.id, reason, request=self.task.request)
        self._finish(states.REVOKED, None, reason, cancelled=True)
        raise Ignore()

    def done(self, results: dict) -> dict:
        self._finish(states.SUCCESS, results, None)
        return results

    def _finish(self, status: str, results, error, cancelled: bool = False) -> None:
        """Claim the task's end; a task whose end was decided already (declared lost, timed out) stores nothing."""
        if not self.records.finish(self.id) and not cancelled:
            record = self.records.get(self.id)
            log.warning("task %s ended %s after it was declared %s: not stored", self.id, status,
                        record.verdict if record else "gone")  # fmt: skip
            raise Ignore()
        self._queue_callback(status, results, error)

    def _queue_callback(self, status: str, results, error) -> None:
        record = self.records.get(self.id)
        if record is not None and record.callback_url:
            payload = {"task_id": self.id, "kind": self.kind, "status": status, "results": results, "error": error}
            _CALLBACKS[self.id] = (record.callback_url, payload)


@signals.task_postrun.connect
def _after_task(task_id: str | None = None, **_) -> None:
    """The task's final state is stored by now: its callback goes out (as a task of its own, retried)."""
    if task_id:
        _send_callback(task_id)


def _send_callback(task_id: str) -> None:
    from api.worker import send

    pending = _CALLBACKS.pop(task_id, None)
    if pending is not None:
        url, payload = pending
        try:
            send("mockvox.callback", f"{task_id}-callback", {"url": url, "payload": payload}, app)
        except Exception as exc:  # the broker is away: the task's own state stands
            log.warning("callback of %s not queued: %s", task_id, exc)


@app.task(bind=True, name="mockvox.callback", autoretry_for=(CallbackFailed,), retry_backoff=2, retry_backoff_max=600,
          retry_jitter=False, max_retries=None)  # fmt: skip
def callback(self, url: str, payload: dict) -> bool:
    """POST a signed task result; a failure is retried with back-off (``callbacks.retries`` times)."""
    if self.request.retries >= settings().callbacks.retries + 1:
        log.warning("callback to %s given up after %d tries", url, self.request.retries)
        return False
    deliver(settings().callbacks, url, payload)
    return True


def task_error(exc: BaseException) -> str:
    """A failure as its task's error: the message without server paths, URIs, SQL or secrets."""
    from api.errors import scrub

    if isinstance(exc, MemoryError):
        return scrub(f"out of memory ({exc})" if str(exc) else "out of memory")
    if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
        return "the task ran past its time limit"
    return scrub(str(exc) or type(exc).__name__)[:2000]
