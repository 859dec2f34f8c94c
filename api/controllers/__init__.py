"""One controller per area of the API."""

from __future__ import annotations

from litestar import Response, route

from api.services import MODEL_ID_RE, MODEL_URI_RE, TASK_ID_RE
from mockvox.data.ids import FILE_ID_RE

# the id formats, as the OpenAPI document shows them (each id is checked with its own message before it is used)
FILE_ID = FILE_ID_RE.pattern
TASK_ID = TASK_ID_RE.pattern
MODEL_REF = f"{MODEL_ID_RE.pattern}|{MODEL_URI_RE.pattern}"


def path_value(value: str) -> str:
    """A ``{name:path}`` parameter without the slash Litestar puts first. Id parameters are path-typed so that a value
    with slashes (``../x``) reaches the id check, which names the parameter (a 422), instead of matching no route."""
    return value[1:] if value.startswith("/") else value


def options_for(path: str, methods: str):
    """An OPTIONS handler for a path two handlers share: Litestar 2's own lists only the first one's methods
    (litestar#4169, fixed in 3)."""

    def options(self) -> Response:
        return Response(None, status_code=204, headers={"Allow": methods}, media_type="text/plain")

    # a controller registers its handlers sorted by name and keeps a path's first OPTIONS handler: this one sorts first
    options.__qualname__ = f"_options[{path}]"
    return route(path, http_method=["OPTIONS"], include_in_schema=False, sync_to_thread=False)(options)
