"""Completion callbacks: a signed JSON POST to an allowed destination, retried with back-off.

The body is ``{"task_id", "kind", "status", "results", "error", "time"}``; ``X-MockVox-Signature: sha256=<hex>``
is the HMAC-SHA256 of the body under the configured secret. Only hosts in ``callbacks.allow`` are called, so a
client cannot turn the service against internal addresses; a URL is checked when the task is requested.
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


def check_callback_url(url: str, config: Callbacks) -> str:
    """``url`` when it may be called back, else ``ValueError`` naming why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"callback_url {url!r} must be an http(s) URL")
    if parts.hostname not in config.allow:
        allowed = ", ".join(config.allow) or "none configured (callbacks.allow)"
        raise ValueError(f"callback_url host {parts.hostname!r} is not allowed; allowed hosts: {allowed}")
    return url


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(config: Callbacks, url: str, payload: dict) -> bool:
    """POST ``payload`` (retries with back-off 1 s, 2 s, 4 s ...); True when the destination answered 2xx."""
    import httpx

    try:
        check_callback_url(url, config)
    except ValueError as exc:
        log.warning("callback not sent: %s", exc)
        return False
    body = json.dumps({**payload, "time": datetime.now(UTC).isoformat()}, ensure_ascii=False, default=str).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, config.secret)}
    for attempt in range(config.retries + 1):
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=config.timeout_s, follow_redirects=False)
            if response.is_success:
                return True
            log.warning("callback to %s answered %s", url, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("callback to %s failed: %s", url, exc)
        if attempt < config.retries:
            time.sleep(2**attempt)
    return False
