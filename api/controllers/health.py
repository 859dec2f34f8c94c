"""Liveness and readiness: the broker, the tracking store and the task records reachable, workers counted.

The checks run in the background (:func:`watch_health`, started by the app's lifespan) once a second; ``/health``
answers with the latest round at once, so a broker or store that hangs never holds a probe: 200 when everything
answers, 503 with the same body when not (an orchestrator then acts). ``/health/live`` only says the process serves.
"""

from __future__ import annotations

import asyncio
import logging
import time

from anyio import to_thread
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from api.schemas import Health
from api.state import Services

log = logging.getLogger("api")
STARTING = Health("starting", False, False, False, None, 0, "")


def _check(fn) -> bool:
    try:
        fn()
        return True
    except Exception:
        return False


def health_of(state) -> Health:
    from importlib.metadata import version

    celery = state.celery
    broker = _check(lambda: celery.connection_for_write().ensure_connection(max_retries=1, timeout=2))
    tracking = _check(lambda: state.registry.client.search_experiments(max_results=1))
    records = _check(state.records.ping)
    workers = None
    if broker and not state.settings.embedded:
        try:
            workers = len(celery.control.ping(timeout=1.0) or [])
        except Exception:
            workers = None
    pids = _pids(state.embedded)
    embedded = sum(1 for pid in pids if _alive(pid))
    ok = broker and tracking and records and (workers is None or workers > 0) and embedded == len(pids)
    return Health("ok" if ok else "degraded", broker, tracking, records, workers, embedded, version("mockvox"))


async def watch_health(state) -> None:
    """Keep ``state.health`` current: one round of checks every ``health_every_s``, in a thread (a hung check delays
    only the next round)."""
    while True:
        started = time.monotonic()
        try:
            state.health = await to_thread.run_sync(health_of, state)
        except Exception as exc:  # a check that fails oddly is a degraded service, not a dead watcher
            log.warning("health checks failed: %s", exc)
        await asyncio.sleep(max(0.05, state.settings.health_every_s - (time.monotonic() - started)))


def _pids(pid_file) -> list[int]:
    """The embedded workers ``mockvox serve`` runs (their pid file; none when it runs no workers)."""
    try:
        return [int(p) for p in pid_file.read_text().split(",") if p.strip()] if pid_file else []
    except OSError:
        return []


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class HealthController(Controller):
    tags = ["health"]

    @get("/health", opt={"public": True}, responses={503: ResponseSpec(data_container=Health, description="not ready")})
    async def health(self, services: Services) -> Response[Health]:
        """Readiness: ``status`` ok (200) when everything the service needs answers, else degraded or starting (503,
        the same body: which part is false)."""
        health = services.health or STARTING
        return Response(health, status_code=200 if health.status == "ok" else 503)

    @get("/health/live", opt={"public": True})
    async def live(self) -> dict[str, str]:
        """Liveness: the process serves requests (200), whatever its stores say."""
        return {"status": "alive"}
