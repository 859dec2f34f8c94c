"""What the service holds for its whole life, built once in the lifespan and closed on shutdown: the broker, the task
records, the dataset store, the tracking store, the resident voices. Controllers get them through the ``services``
and ``access`` dependencies (:func:`provide_services`, :func:`provide_access`), never from ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from litestar import Request

from api.settings import Settings


@dataclass
class Services:
    settings: Settings
    celery: Any  # celery.Celery
    records: Any  # api.records.Records
    refs: Any  # api.refs.RefStore
    store: Any  # mockvox.data.store.DatasetStore
    pipeline: Any  # mockvox.data.pipeline.DatasetPipeline
    registry: Any  # mockvox.train.tracking.Tracker
    voices: Any  # mockvox.infer.voices.VoiceCache
    prepare_limits: tuple[float, float]  # seconds of a recording /upload and /add accept
    min_speech: float  # seconds of usable speech a training needs
    stream_slots: anyio.Semaphore
    stream: Any = None  # mockvox.infer.streaming.StreamConfig: conf/infer.yaml's stream defaults
    embedded: Any = None  # the pid file of the workers `mockvox serve` runs (None: none)
    health: Any = None  # the latest round of health checks (api.controllers.health)

    def resolve_model(self, ref: str) -> str:
        from mockvox.infer.registry import resolve_model_id

        return resolve_model_id(self.registry, ref)

    def check_speech(self, file_id: str, denoised: bool) -> None:
        """Raise ``NotEnoughSpeech`` when the dataset has too little usable speech to train on."""
        from mockvox.data.datasets import require_speech

        results = self.store.read_output(file_id)["results"]
        folder = self.store.audio_dir(file_id) if denoised else self.store.sliced_dir(file_id)
        require_speech(file_id, results, folder, self.min_speech)

    def close(self) -> None:
        self.voices.clear()
        self.records.engine.dispose()


def build_services(settings: Settings, embedded=None) -> Services:
    """Everything a request needs, once per process."""
    from celery import Celery

    from api.records import Records
    from api.refs import RefStore
    from api.synthesis import infer_config, stream_defaults, voice_cache
    from api.worker import configure
    from mockvox.config import compose
    from mockvox.data.pipeline import DatasetPipeline, prepare_settings
    from mockvox.data.store import DatasetStore
    from mockvox.train.config import compose_train
    from mockvox.train.tracking import Tracker

    for folder in (settings.state_dir, settings.outputs_dir, settings.uploads_dir, settings.refs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    prep, data_dir = prepare_settings(compose("prepare", [f"paths.data_dir={settings.data_dir}"]))
    store = DatasetStore(data_dir)
    train_cfg = compose_train([*settings.train_overrides, f"paths.data_dir={settings.data_dir}"])
    infer_cfg = infer_config(settings)
    return Services(
        settings=settings,
        celery=configure(settings, Celery("mockvox")),  # its own: a second service in one process never shares a
        # broker connection or result backend with the first (the API only sends tasks by name)
        records=Records(settings.records),
        refs=RefStore(settings.refs_dir),
        store=store,
        pipeline=DatasetPipeline(store, prep),
        registry=Tracker.from_config(infer_cfg.logger),
        voices=voice_cache(settings),
        prepare_limits=(prep.min_seconds, prep.max_seconds),
        min_speech=float(train_cfg.data.min_speech_seconds),
        stream_slots=anyio.Semaphore(settings.limits.stream_concurrency),
        stream=stream_defaults(infer_cfg),
        embedded=embedded,
    )


def provide_services(request: Request) -> Services:
    """The ``services`` dependency."""
    return request.app.state.services


def provide_access(request: Request):
    """The ``access`` dependency: the ids of this request, checked for its caller (:mod:`api.access`)."""
    from api.access import Access
    from api.auth import caller_of

    return Access(caller_of(request), request.app.state.services)


def settings_of(connection) -> Settings | None:
    """The settings, for the parts that run outside dependency injection (the key guard, exception handlers)."""
    return connection.app.state.get("settings")
