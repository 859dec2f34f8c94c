"""The app factory: controllers, errors, auth, offline docs; heavy resources built once in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from api.auth import provide_access, require_key
from api.controllers.datasets import DatasetController
from api.controllers.health import HealthController
from api.controllers.models import ModelController
from api.controllers.references import ReferenceController
from api.controllers.synthesis import SynthesisController
from api.controllers.tasks import TaskController
from api.controllers.training import TrainingController
from api.errors import ApiError, exception_handlers
from api.settings import Settings

log = logging.getLogger("api")
CONTROLLERS = [DatasetController, TrainingController, ReferenceController, SynthesisController, TaskController,
               ModelController, HealthController]  # fmt: skip


def _resources(app: Litestar, settings: Settings) -> None:
    """Everything a request needs, once per process, onto ``app.state``."""
    from api.records import Records
    from api.refs import RefStore
    from api.synthesis import infer_config, voice_cache
    from api.worker import app as celery
    from api.worker import configure
    from mockvox.config import compose
    from mockvox.data.datasets import require_speech
    from mockvox.data.pipeline import DatasetPipeline, prepare_settings
    from mockvox.data.store import DatasetStore
    from mockvox.infer.registry import resolve_model_id
    from mockvox.train.config import compose_train
    from mockvox.train.tracking import Tracker

    state = app.state
    state.settings = settings
    for folder in (settings.state_dir, settings.outputs_dir, settings.uploads_dir, settings.refs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    state.celery = configure(settings, celery)
    state.records = Records(settings.records)
    state.refs = RefStore(settings.refs_dir)
    prep, data_dir = prepare_settings(compose("prepare", [f"paths.data_dir={settings.data_dir}"]))
    state.store = DatasetStore(data_dir)
    state.pipeline = DatasetPipeline(state.store, prep)
    state.prepare_limits = (prep.min_seconds, prep.max_seconds)
    train_cfg = compose_train([*settings.train_overrides, f"paths.data_dir={settings.data_dir}"])
    min_speech = float(train_cfg.data.min_speech_seconds)
    state.registry = Tracker.from_config(infer_config(settings).logger)
    state.voices = voice_cache(settings)
    state.stream_slots = anyio.Semaphore(settings.limits.stream_concurrency)
    state.resolve_model = lambda ref: resolve_model_id(state.registry, ref)

    def check_speech(file_id: str, denoised: bool) -> None:
        results = state.store.read_output(file_id)["results"]
        folder = state.store.audio_dir(file_id) if denoised else state.store.sliced_dir(file_id)
        require_speech(file_id, results, folder, min_speech)

    state.check_speech = check_speech


async def _sweep_outputs(settings: Settings) -> None:
    """Delete synthesised WAVs older than ``outputs_hours`` (then /output answers 410)."""
    while True:
        cutoff = time.time() - settings.outputs_hours * 3600
        for path in settings.outputs_dir.glob("*.wav"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
        await asyncio.sleep(600)


async def _sweep_lost(state) -> None:
    """Tasks without heartbeats are declared lost here, on a schedule (never by a request that reads them)."""
    from api.services import sweep_lost

    while True:
        try:
            await anyio.to_thread.run_sync(sweep_lost, state)
        except Exception as exc:  # the records may be away for a moment
            log.warning("lost-task sweep failed: %s", exc)
        await asyncio.sleep(max(1.0, state.settings.heartbeat_s))


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    from api.controllers.health import watch_health

    tasks = [asyncio.create_task(coro) for coro in (_sweep_outputs(app.state.settings), watch_health(app.state),
                                                    _sweep_lost(app.state))]  # fmt: skip
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()


def _docs() -> tuple[OpenAPIConfig, object]:
    import swagger_ui_bundle

    assets = "/docs/assets"
    plugin = SwaggerRenderPlugin(
        js_url=f"{assets}/swagger-ui-bundle.js",
        css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        path="/",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",  # not the CDN default
    )
    config = OpenAPIConfig(
        title="MockVox API",
        version=_version(),
        path="/docs",
        render_plugins=[plugin],
        description="Voice cloning on GPT-SoVITS v2/v4: datasets, training, voices, synthesis.",
    )
    router = create_static_files_router(path=assets, directories=[Path(swagger_ui_bundle.swagger_ui_path)],
                                        opt={"public": True}, include_in_schema=False)  # fmt: skip
    return config, router


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mockvox")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings, embedded: Path | None = None) -> Litestar:
    """The service for ``settings`` (``embedded``: the pid file of the workers ``mockvox serve`` runs, for /health)."""
    openapi, assets = _docs()
    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    app = Litestar(
        route_handlers=[*CONTROLLERS, assets],
        guards=[require_key],
        dependencies={"access": Provide(provide_access, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        openapi_config=openapi,
        cors_config=cors,
        lifespan=[_lifespan],
        state=State({"embedded": embedded}),
        request_max_body_size=settings.limits.upload_bytes + (1 << 20),
        debug=False,
        logging_config=None,  # MockVox's one logging set-up (mockvox.logs), not Litestar's root handler at INFO
    )
    _resources(app, settings)
    return app


__all__ = ["ApiError", "create_app"]
