"""The ASGI app of ``mockvox serve``: settings from the environment the command set (one per uvicorn process)."""

from __future__ import annotations

import os

from litestar import Litestar


def app() -> Litestar:
    from api.app import create_app
    from api.settings import env_settings

    settings = env_settings()
    return create_app(settings, embedded=settings.state_dir / "workers.pid" if os.environ.get(
        "MOCKVOX_SERVE_OVERRIDES") is not None else None)  # fmt: skip
