"""API keys: ``Authorization: Bearer <key>`` or ``X-API-Key``; everything but /health and /docs needs one when set."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.errors import ApiError
from api.services import key_owner


def presented_key(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key")


def require_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard: with keys configured, a request must present one of them (401 otherwise)."""
    keys = connection.app.state.settings.api_keys
    if not keys or handler.opt.get("public") or connection.url.path.startswith("/docs"):
        connection.scope["mockvox_owner"] = ""
        return
    given = presented_key(connection) or ""
    if not any(hmac.compare_digest(given.encode(), k.encode()) for k in keys):
        raise ApiError(401, "unauthorized")
    connection.scope["mockvox_owner"] = key_owner(given)
