"""API keys: ``Authorization: Bearer <key>`` or ``X-API-Key``; everything but /health and /docs needs one when set.

Each key is a tenant (:mod:`api.access`); an admin key (``admin_keys``) also sees every tenant's data.
"""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.access import Caller, key_owner
from api.errors import ApiError
from api.state import settings_of

CALLER = "mockvox_caller"


def presented_key(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key")


def _known(given: str, keys: tuple[str, ...]) -> bool:
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)  # every key compared: no timing hint


def require_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard: with keys configured, a request must present one of them (401 otherwise); it names the caller."""
    settings = settings_of(connection)
    if not settings.keys_required:
        connection.scope[CALLER] = Caller("", admin=True)  # one local user
        return
    given = presented_key(connection) or ""
    admin, user = _known(given, settings.admin_keys), _known(given, settings.api_keys)
    if admin or user:
        connection.scope[CALLER] = Caller(key_owner(given), admin=admin)
    elif handler.opt.get("public") or connection.url.path.startswith("/docs"):
        connection.scope[CALLER] = Caller("\0")  # sees nothing
    else:
        raise ApiError(401, "unauthorized")


def caller_of(connection: ASGIConnection) -> Caller:
    return connection.scope.get(CALLER) or Caller("\0")
