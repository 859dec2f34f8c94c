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

from api.auth import require_key
from api.controllers.datasets import DatasetController
from api.controllers.health import HealthController
from api.controllers.models import ModelController
from api.controllers.references import ReferenceController
from api.controllers.stream_input import stream_input
from api.controllers.synthesis import SynthesisController
from api.controllers.tasks import TaskController
from api.controllers.training import TrainingController
from api.controllers.v1 import OpenAIController
from api.errors import ApiError, exception_handlers
from api.settings import Settings
from api.state import provide_access, provide_services

log = logging.getLogger("api")
CONTROLLERS = [DatasetController, TrainingController, ReferenceController, SynthesisController, TaskController,
               ModelController, HealthController, OpenAIController, stream_input]  # fmt: skip


async def _sweep_outputs(services) -> None:
    """Delete synthesised WAVs older than ``outputs_hours`` (then /output answers 410), expired task results and
    spooled uploads nothing will consume."""
    from api.services import sweep_spool

    settings = services.settings
    while True:
        cutoff = time.time() - settings.outputs_hours * 3600
        for path in settings.outputs_dir.glob("*.wav"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
        try:  # results past result_expires (a database backend keeps them until asked; Redis expires its own)
            await anyio.to_thread.run_sync(services.celery.backend.cleanup)
        except Exception as exc:
            log.debug("result cleanup: %s", exc)
        try:
            await anyio.to_thread.run_sync(sweep_spool, services)
        except Exception as exc:
            log.warning("spool cleanup failed: %s", exc)
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
    """Build the services (in a thread: composing configs and opening stores takes seconds), run the sweepers and
    the health watcher, close everything on shutdown."""
    from api.controllers.health import watch_health
    from api.state import build_services

    services = await anyio.to_thread.run_sync(build_services, app.state.settings, app.state.embedded)
    app.state.services = services
    tasks = [asyncio.create_task(c) for c in (_sweep_outputs(services), watch_health(services), _sweep_lost(services))]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await anyio.to_thread.run_sync(services.close)


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
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "access": Provide(provide_access, sync_to_thread=False),
        },  # fmt: skip
        exception_handlers=exception_handlers(),
        openapi_config=openapi,
        cors_config=cors,
        lifespan=[_lifespan],
        state=State({"settings": settings, "embedded": embedded}),
        request_max_body_size=settings.limits.upload_bytes + (1 << 20),
        debug=False,
        logging_config=None,  # MockVox's one logging set-up (mockvox.logs), not Litestar's root handler at INFO
    )
    return app


__all__ = ["ApiError", "create_app"]
