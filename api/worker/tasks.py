"""Celery tasks: thin wrappers over the library, each with progress, a heartbeat, cancellation and a callback.

Every task is given its id by the API, which recorded it first (:mod:`api.records`). A task cancelled while queued
ends REVOKED without running; a training cancelled while running stops at its next batch (MLflow runs KILLED,
nothing registered). A worker keeps its resources (dataset pipeline, resident voices) for its whole life.
"""

from __future__ import annotations

import functools
import logging
import math

from api.settings import Settings
from api.worker import app, configure
from api.worker.job import Job, settings

log = logging.getLogger("api.worker")
FEATURE_SHARE, SOVITS_SHARE, EVAL_SHARE = 10.0, 45.0, 10.0  # % of a training: features, SoVITS, (GPT), evaluation


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
