"""Completion callbacks: a signed JSON POST to an allowed destination, retried with back-off.

The body is ``{"task_id", "kind", "status", "results", "error", "time"}``; ``X-MockVox-Timestamp`` is the Unix time
of sending and ``X-MockVox-Signature: sha256=<hex>`` the HMAC-SHA256 of ``"<timestamp>." + body`` under the
configured secret, so a receiver can refuse a replay outside its window (:func:`verify`). Without a secret no
callback is accepted. Only hosts in ``callbacks.allow`` are called, so a client cannot turn the service against
internal addresses; a URL is checked when the task is requested.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from api.settings import Callbacks

log = logging.getLogger("api.callbacks")
SIGNATURE_HEADER = "X-MockVox-Signature"
TIMESTAMP_HEADER = "X-MockVox-Timestamp"


def check_callback_url(url: str, config: Callbacks) -> str:
    """``url`` when it may be called back, else ``ValueError`` naming why."""
    if not config.secret:
        raise ValueError("callbacks are off: the server has no callback secret (MOCKVOX_CALLBACK_SECRET)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"callback_url {url!r} must be an http(s) URL")
    if parts.hostname not in config.allow:
        allowed = ", ".join(config.allow) or "none configured (callbacks.allow)"
        raise ValueError(f"callback_url host {parts.hostname!r} is not allowed; allowed hosts: {allowed}")
    return url


def sign(body: bytes, secret: str, timestamp: int) -> str:
    return "sha256=" + hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(body: bytes, headers, secret: str, window_s: float = 300, now: float | None = None) -> bool:
    """What a receiver checks: the signature over timestamp and body, and a timestamp within ``window_s``."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, TypeError, ValueError):
        return False
    fresh = abs((time.time() if now is None else now) - timestamp) <= window_s
    return fresh and hmac.compare_digest(sign(body, secret, timestamp), str(headers.get(SIGNATURE_HEADER, "")))


class CallbackFailed(Exception):
    """The destination did not answer 2xx (retried by the callback task with back-off)."""


def deliver(config: Callbacks, url: str, payload: dict) -> bool:
    """POST ``payload`` once, signed; True when the destination answered 2xx, False when it may not be called.

    Raises:
        CallbackFailed: the destination failed or answered an error (the caller retries).
    """
    import httpx

    try:
        check_callback_url(url, config)
    except ValueError as exc:
        log.warning("callback not sent: %s", exc)
        return False
    body = json.dumps({**payload, "time": datetime.now(UTC).isoformat()}, ensure_ascii=False, default=str).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
               SIGNATURE_HEADER: sign(body, config.secret, timestamp)}  # fmt: skip
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=config.timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise CallbackFailed(f"callback to {url} failed: {exc}") from None
    if not response.is_success:
        raise CallbackFailed(f"callback to {url} answered {response.status_code}")
    return True
