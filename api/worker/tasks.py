"""Celery tasks: thin wrappers over the library, each with progress, a heartbeat, cancellation and a callback.

Every task is given its id by the API, which recorded it first (:mod:`api.records`). A task cancelled while queued
ends REVOKED without running; a training cancelled while running stops at its next batch (MLflow runs KILLED,
nothing registered). A worker keeps its resources (dataset pipeline, resident voices) for its whole life.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from contextlib import contextmanager

from celery import signals, states
from celery.exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded

from api.callbacks import CallbackFailed, deliver
from api.records import Records
from api.settings import Settings, env_settings
from api.worker import app, configure

log = logging.getLogger("api.worker")
FEATURE_SHARE, SOVITS_SHARE, EVAL_SHARE = 10.0, 45.0, 10.0  # % of a training: features, SoVITS, (GPT), evaluation


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


# --- data -------------------------------------------------------------------------------------------------------------
@functools.cache
def dataset_pipeline():
    from mockvox.config import compose
    from mockvox.data.pipeline import DatasetPipeline, prepare_settings
    from mockvox.data.store import DatasetStore

    cfg = compose("prepare", [f"paths.data_dir={settings().data_dir}"])
    prep, data_dir = prepare_settings(cfg)
    return DatasetPipeline(DatasetStore(data_dir), prep)


PREPARE_SHARES = {"slice": (0.0, 15.0), "denoise": (15.0, 35.0), "asr": (35.0, 100.0)}


def _dataset_progress(job: Job):
    def progress(stage: str, done: int, total: int) -> None:
        lo, hi = PREPARE_SHARES.get(stage, (0.0, 100.0))
        job.progress(lo + (hi - lo) * done / max(total, 1), stage, done=done, total=total)

    return progress


@app.task(bind=True, name="mockvox.prepare")
def prepare(self, file_id: str, upload: str, language: str, denoise: bool) -> dict:
    from pathlib import Path

    job = Job(self, "prepare")
    try:
        with job.running():
            result = dataset_pipeline().upload(upload, language, denoise, _dataset_progress(job), file_id=file_id)
    finally:  # used, failed or cancelled before it started: the spooled upload goes
        Path(upload).unlink(missing_ok=True)
    return job.done(result.as_dict())


@app.task(bind=True, name="mockvox.add")
def add(self, file_id: str, upload: str) -> dict:
    from pathlib import Path

    job = Job(self, "add")
    try:
        with job.running():
            result = dataset_pipeline().add(file_id, upload, _dataset_progress(job))
    finally:
        Path(upload).unlink(missing_ok=True)
    return job.done(result.as_dict())


# --- training ---------------------------------------------------------------------------------------------------------
class _Observer:
    """Training progress as task progress: features 0-10 %, SoVITS 10-55 %, GPT 55-90 %, evaluation 90-100 %."""

    def __init__(self, job: Job):
        self.job = job

    def progress(self, stage: str, done: int, total: int, **info) -> None:
        share = done / max(total, 1)
        if stage == "evaluate":
            self.job.progress(100 - EVAL_SHARE + EVAL_SHARE * share, "evaluation", done=done, total=total)
        elif stage in ("sovits", "gpt"):
            lo, width = (
                (FEATURE_SHARE, SOVITS_SHARE)
                if stage == "sovits"
                else (FEATURE_SHARE + SOVITS_SHARE, 100 - FEATURE_SHARE - SOVITS_SHARE - EVAL_SHARE)
            )
            label = f"{stage} epoch {info.get('epoch', 1)} of {info.get('epochs', 1)}"
            self.job.progress(lo + width * share, label, **info)
        else:
            self.job.progress(FEATURE_SHARE * share, "features", step=stage, done=done, total=total)

    def cancelled(self) -> bool:
        return self.job.cancelled()

    def run_started(self, run_id: str) -> None:
        self.job.records.set_run(self.job.id, run_id)


def _client_overrides(overrides: list[str]) -> list[str]:
    """The request's overrides checked again against this worker's allow-list (a task from any API process)."""
    from api.overrides import checked_overrides

    return checked_overrides(list(overrides or []), settings().train_allow)


def _train_base(overrides: list[str]):
    from mockvox.train.config import compose_train

    return compose_train([*settings().train_overrides, f"paths.data_dir={settings().data_dir}", *overrides])


def _train_result(result) -> dict:
    """The task's result: the voice, its stages' metrics, held-out slices and evaluation summary (or error)."""
    out = result.as_dict()
    out.pop("model_uri", None)
    out.pop("voice_dir", None)
    return _json_safe(out)


def _json_safe(value):
    """NaN and infinities (a metric with no value) as null: task results are JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@app.task(bind=True, name="mockvox.train")
def train(self, file_id: str, epochs_sovits: int, epochs_gpt: int, version: str, denoised: bool,
          overrides: list[str]) -> dict:  # fmt: skip
    from mockvox.data.ids import validate_file_id
    from mockvox.train.run import train as run_training

    job = Job(self, "train")
    with job.running():
        job.progress(0, "features")
        if version not in ("v2", "v4"):
            raise ValueError(f"version {version!r}: accepted v2, v4")
        cfg = _train_base(
            [
                f"model={version}",
                f"data.file_id={validate_file_id(file_id)}",
                f"epochs.sovits={int(epochs_sovits)}",
                f"epochs.gpt={int(epochs_gpt)}",
                f"data.denoise={str(bool(denoised)).lower()}",
                *_client_overrides(overrides),
            ]
        )
        cfg.callbacks.progress = False
        result = run_training(cfg, observer=_Observer(job), extra_tags=job.owner_tags())
    return job.done(_train_result(result))


@app.task(bind=True, name="mockvox.resume")
def resume(self, model_id: str, epochs_sovits: int, epochs_gpt: int, overrides: list[str]) -> dict:
    from mockvox.infer.registry import voice_cache_dir
    from mockvox.train.resume import load_resume_state, resume_config
    from mockvox.train.run import train as run_training
    from mockvox.train.tracking import Tracker

    job = Job(self, "resume")
    with job.running():
        job.progress(0, "features")
        base = _train_base([])
        state = load_resume_state(Tracker.from_config(base.logger), model_id, voice_cache_dir(base))
        cfg = resume_config(state, base, int(epochs_sovits), int(epochs_gpt), _client_overrides(overrides))
        cfg.paths.data_dir = str(settings().data_dir)
        cfg.callbacks.progress = False
        result = run_training(cfg, resume=state, observer=_Observer(job), extra_tags=job.owner_tags())
    return job.done({**_train_result(result), "resumed_from": state.model_id})


# --- synthesis --------------------------------------------------------------------------------------------------------
@functools.cache
def voices():
    """This worker's resident voices (built once per process)."""
    from api.synthesis import voice_cache

    return voice_cache(settings())


@app.task(bind=True, name="mockvox.infer")
def infer(self, model_id: str, ref: dict | None, target_text: str, target_language: str, params: dict) -> dict:
    from api.synthesis import render

    job = Job(self, "infer")
    with job.running():
        job.progress(0, "synthesis")

        def progress(done: int, total: int) -> None:
            job.progress(100 * done / total, "synthesis")

        path, sample_rate, seconds = render(voices(), settings(), self.request.id, model_id, ref, target_text,
                                            target_language, params, progress)  # fmt: skip
    return job.done({"output": f"/output/{self.request.id}", "sample_rate": sample_rate, "seconds": seconds,
                     "model_id": model_id, "file": path.name})  # fmt: skip


def main(argv: list[str] | None = None, settings_: Settings | None = None) -> None:
    """Run a worker (``celery worker`` with MockVox's settings)."""
    configure(settings_ or settings())
    app.worker_main(argv or ["worker", "--pool=solo", "--loglevel=INFO"])
