"""Request bodies read as they arrive: multipart files streamed to disk under a size limit, fields kept in memory.

Litestar's own multipart parsing holds the whole body in memory; here the ``multipart`` package's push parser
takes the body chunk by chunk, so an upload of any size costs one chunk of memory and is refused (413) as soon as
it passes the limit.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import multipart
from anyio import to_thread
from litestar import Request

from api.errors import ApiError

FIELD_LIMIT = 1 << 20  # bytes of one non-file form field (a revision's JSON included)
MAX_FIELDS = 64  # fields of a form or members of a JSON body (every request shape has far fewer)


@dataclass
class Body:
    """Form fields (or a JSON object's members) and the files written to disk, by field name."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        for path in self.files.values():
            path.unlink(missing_ok=True)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", limit_mb=round(limit / 2**20, 1))


async def read_body(request: Request, spool_dir: Path, limit: int, file_fields: tuple[str, ...] = ()) -> Body:
    """Read a multipart, urlencoded or JSON body; files of ``file_fields`` land in ``spool_dir``.

    Raises:
        ApiError: 413 past ``limit`` bytes (declared or streamed), 400 for a malformed body or media type.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_body", detail="Content-Length is not a number")
        if int(declared) > limit:
            raise _too_large(limit)
    media, options = multipart.parse_options_header(request.headers.get("content-type", ""))
    if media == "multipart/form-data":
        if not options.get("boundary"):
            raise ApiError(400, "bad_body", detail="multipart body without a boundary")
        return await _multipart(request, options["boundary"], spool_dir, limit, file_fields)
    if media not in ("application/json", "application/x-www-form-urlencoded", ""):
        raise ApiError(415, "media_type", media=media)
    raw = await _small(request, min(limit, FIELD_LIMIT * 4))
    parse = _json_fields if media == "application/json" else _form_fields
    return Body(fields=await to_thread.run_sync(parse, raw))  # megabytes of text are parsed off the event loop


def _form_fields(raw: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise ApiError(400, "bad_body", detail="the form is not UTF-8") from None
    except ValueError:
        raise ApiError(400, "bad_body", detail=f"more than {MAX_FIELDS} form fields") from None
    return dict(pairs)


async def _small(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_fields(raw: bytes) -> dict[str, str]:
    """A JSON object's members as form fields: strings as they are, other values as their JSON, null as absent."""
    try:
        data = json.loads(raw or b"{}")
        if not isinstance(data, dict):
            raise ApiError(400, "bad_json", detail="the body must be a JSON object")
        if len(data) > MAX_FIELDS:
            raise ApiError(400, "bad_json", detail=f"more than {MAX_FIELDS} members")
        return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in data.items()
                if v is not None}  # fmt: skip
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep, an integer of 4300+ digits
        raise ApiError(400, "bad_json", detail=str(exc)[:200]) from None


async def _multipart(request: Request, boundary: str, spool_dir: Path, limit: int, file_fields) -> Body:
    body, size = Body(), 0
    spool_dir.mkdir(parents=True, exist_ok=True)
    current, sink, text = None, None, bytearray()
    parser = multipart.PushMultipartParser(boundary, max_header_count=16, max_segment_count=MAX_FIELDS)
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            for event in parser.parse(chunk):
                current, sink, text = _event(event, body, current, sink, text, spool_dir, file_fields)
        for event in parser.parse(b""):
            current, sink, text = _event(event, body, current, sink, text, spool_dir, file_fields)
        if not parser.closed:
            raise ApiError(400, "bad_body", detail="the multipart body ends early")
    except multipart.MultipartError as exc:
        _close(sink)
        body.discard()
        raise ApiError(400, "bad_body", detail=str(exc)) from None
    except BaseException:
        _close(sink)
        body.discard()
        raise
    return body


def _close(sink) -> None:
    if sink is not None and not sink.closed:
        sink.close()


def _event(event, body: Body, current, sink, text: bytearray, spool_dir: Path, file_fields):
    """One parser event: a segment start, a chunk of its body, or its end (``None``)."""
    if isinstance(event, multipart.MultipartSegment):
        if event.filename is not None or event.name in file_fields:
            if event.name not in file_fields:
                raise ApiError(400, "bad_body", detail=f"unexpected file field {event.name!r}")
            if event.name in body.files:
                raise ApiError(400, "bad_body", detail=f"field {event.name!r} given twice")
            path = spool_dir / f"{uuid.uuid4().hex}.part"
            body.files[event.name], body.filenames[event.name] = path, event.filename or ""
            return event, open(path, "wb"), text  # noqa: SIM115 (closed at the segment's end)
        return event, None, bytearray()
    if event is None:
        if sink is not None:
            sink.close()
        elif current is not None:
            try:
                body.fields[current.name] = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, "bad_body", detail=f"field {current.name!r} is not UTF-8") from None
        return None, None, bytearray()
    if sink is not None:
        sink.write(event)
    else:
        text.extend(event)
        if len(text) > FIELD_LIMIT:
            raise ApiError(413, "field_too_large", name=current.name)
    return current, sink, text
