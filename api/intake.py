"""What a request brings, checked before anything is kept or queued: uploaded recordings and callback URLs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from anyio import to_thread
from litestar import Request

from api.callbacks import check_callback_url
from api.errors import ApiError, message
from api.errors import language as lang_of
from api.requests import S, parse
from api.schemas import Queued
from api.services import enqueue
from api.uploads import read_body
from mockvox.audio.io import AudioError

FORMATS = (".wav", ".mp3", ".flac", ".ogg")


@contextlib.contextmanager
def named_as(path: Path, filename: str):
    """An ``AudioError`` about a spooled upload names the file as the client sent it (never the spool's path)."""
    try:
        yield
    except AudioError as exc:
        shown = Path(filename).name[:100] or "the file"
        raise AudioError(str(exc).replace(Path(path).name, shown)) from None


async def check_audio(services, path: Path, filename: str) -> float:
    """Seconds of a recording in an accepted format whose header is within the service's limits (else 4xx). Only
    the header is read here: the worker decodes (in bounded blocks), never the API process."""
    from mockvox.audio.probe import probe_audio

    if not filename.lower().endswith(FORMATS):
        raise ApiError(422, "format", f"file {filename[:100]!r}")
    low, high = services.prepare_limits
    with named_as(path, filename):
        limits = replace(services.settings.audio, min_seconds=low, max_seconds=high)
        probe = await to_thread.run_sync(probe_audio, path, limits)
    return probe.seconds


async def upload_body(request: Request, services, shape: type[S], check: Callable[[S], object] | None = None):
    """The body and its form (``shape``), checked: fields, then ``check`` (the request's ids), the callback URL and
    the recording's header. The spooled file is removed if anything fails."""
    settings = services.settings
    body = await read_body(request, settings.uploads_dir, settings.limits.upload_bytes, ("file",))
    try:
        form = parse(body.fields, shape)
        if check is not None:
            await to_thread.run_sync(check, form)
        if "file" not in body.files:
            raise ApiError(422, "missing", "file is required", name="file")
        if form.callback_url:
            check_callback(form.callback_url, settings)
        await check_audio(services, body.files["file"], body.filenames["file"])
    except BaseException:
        body.discard()
        raise
    return body, form


def check_callback(url: str, settings) -> str:
    try:
        return check_callback_url(url, settings.callbacks)
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), name="callback_url") from None


async def enqueue_upload(request: Request, services, body, callback_url: str | None, kind: str,
                         kwargs: dict) -> Queued:  # fmt: skip
    """Queue the processing of an uploaded recording; the upload is removed if it cannot be queued."""
    upload = str(body.files["file"])
    try:
        task_id = await enqueue(request, services, kind, f"mockvox.{kind}", {**kwargs, "upload": upload},
                                callback_url, spool=upload)  # fmt: skip
    except BaseException:
        body.discard()
        raise
    return Queued(message("queued", lang_of(request)), task_id, kwargs["file_id"])
