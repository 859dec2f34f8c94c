"""Liveness and readiness: the broker, the tracking store and the task records reachable, workers counted."""

from __future__ import annotations

import time

from anyio import to_thread
from litestar import Controller, Request, get

from api.schemas import Health

HEALTH_TTL_S = 1.0  # probes from many clients share one round of checks per second


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

    @get("/health", opt={"public": True})
    async def health(self, request: Request) -> Health:
        """``status`` ok when everything the service needs answers, else degraded (which part is false)."""
        state = request.app.state
        cached = state.get("health_cache")
        if cached is not None and time.monotonic() - cached[0] < HEALTH_TTL_S:
            return cached[1]
        health = await to_thread.run_sync(health_of, state)
        state.health_cache = (time.monotonic(), health)
        return health
