"""One controller per area of the API."""

from __future__ import annotations

from api.services import MODEL_ID_RE, MODEL_URI_RE, TASK_ID_RE
from mockvox.data.ids import FILE_ID_RE

# the id formats, as the OpenAPI document shows them (each id is checked with its own message before it is used)
FILE_ID = FILE_ID_RE.pattern
TASK_ID = TASK_ID_RE.pattern
MODEL_REF = f"{MODEL_ID_RE.pattern}|{MODEL_URI_RE.pattern}"
