"""MockVox file ids: ``YYYYmmddHHMMSSffffff.<8 hex>.<32 hex>``, minted here and validated wherever one enters."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from datetime import datetime

FILE_ID_RE = re.compile(r"^\d{20}\.[0-9a-f]{8}\.[0-9a-f]{32}$")
SLICE_KEY_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class InvalidIdError(ValueError):
    """An id that is not in the accepted format (and so can never reach the file system)."""


def new_file_id(now: datetime | None = None) -> str:
    """A fresh id: local timestamp with microseconds, an 8-hex digest and a random uuid4 hex."""
    ts = (now or datetime.now().astimezone()).strftime("%Y%m%d%H%M%S%f")
    digest = hashlib.md5(f"{ts}-{uuid.uuid4().hex[:6]}-{os.getpid()}-{uuid.getnode()}".encode()).hexdigest()[:8]
    return f"{ts}.{digest}.{uuid.uuid4().hex}"


def validate_file_id(value: str) -> str:
    """Return ``value`` if it is a well-formed file id, else raise ``InvalidIdError`` naming the format."""
    if not isinstance(value, str) or not FILE_ID_RE.fullmatch(value):
        raise InvalidIdError(
            f"invalid file id {value!r}: expected YYYYmmddHHMMSSffffff.<8 hex>.<32 hex>, "
            "e.g. 20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938"
        )
    return value


def validate_slice_key(value: str) -> str:
    """A slice key (ASR key) is a file stem of letters, digits, ``_`` and ``-`` only."""
    if not isinstance(value, str) or not SLICE_KEY_RE.fullmatch(value):
        raise InvalidIdError(
            f"invalid slice key {value!r}: expected letters, digits, '_' or '-' (e.g. 0000000000_0000193600)"
        )
    return value


def slice_key(start: int, end: int) -> str:
    """The ASR key of a slice: its 32 kHz sample range."""
    return f"{start:010d}_{end:010d}"
