"""Errors as the service answers them: ``{"detail", "code", "status"}`` in Chinese or English, never a bare 500.

``detail`` is the message (MockVox's key), ``code`` a stable name a client can branch on. The language follows
``Accept-Language`` (``zh`` default, as MockVox; ``en``). Errors the library raises for a bad request keep their own
message, which names the problem, after the localised summary.
"""

from __future__ import annotations

import logging
import re

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.exceptions import NotFoundException as RouteNotFound
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("api")

MESSAGES: dict[str, tuple[str, str]] = {  # code: (zh, en); {names} are filled from the error's params
    "too_large": ("文件大小超过限制（{limit_mb} MB）", "the request body exceeds the limit ({limit_mb} MB)"),
    "field_too_large": ("表单字段 {name} 过大", "form field {name} is too large"),
    "bad_body": ("请求体格式错误", "malformed request body"),
    "bad_json": ("JSON 格式错误", "invalid JSON"),
    "media_type": ("不支持的请求类型 {media}", "unsupported media type {media}"),
    "missing": ("缺少参数 {name}", "missing parameter {name}"),
    "invalid": ("参数 {name} 无效", "invalid parameter {name}"),
    "bad_audio": ("音频文件无法使用", "the audio file cannot be used"),
    "format": ("不支持的文件格式（支持 wav/mp3/flac/ogg）", "unsupported file format (accepted: wav, mp3, flac, ogg)"),
    "not_found": ("未找到", "not found"),
    "dataset_not_found": ("数据集不存在", "dataset not found"),
    "model_not_found": ("模型不存在", "model not found"),
    "ref_not_found": ("参考音频不存在", "reference audio not found"),
    "task_not_found": ("任务不存在", "task not found"),
    "not_ready": ("任务尚未完成（{state}）", "the task is not finished ({state})"),
    "no_output": ("该任务没有音频输出", "this task has no audio output"),
    "gone": ("结果已过期", "the result has expired"),
    "unauthorized": ("需要有效的 API 密钥", "a valid API key is required"),
    "too_many": ("未完成的任务过多（上限 {limit}）", "too many unfinished tasks (limit {limit})"),
    "too_many_refs": ("参考音频过多（上限 {limit}），请先删除", "too many references (limit {limit})"),
    "unavailable": ("系统暂时不可用", "the service is temporarily unavailable"),
    "bad_request": ("请求无效", "invalid request"),
    "method": ("不支持的请求方法 {method}", "method {method} is not allowed"),
    "internal": ("服务器内部错误", "internal server error"),
    "queued": ("任务已进入处理队列", "the task has entered the queue"),
    "cancelled": ("任务已取消", "the task has been cancelled"),
    "deleted": ("已删除", "deleted"),
    "busy": ("数据集正忙，请稍后重试", "the dataset is busy with another change; retry later"),
    "revised": ("ASR 校对已保存", "the ASR revision has been saved"),
}


def language(request: Request | None, default: str = "zh") -> str:
    """``zh`` or ``en`` from ``Accept-Language`` (first supported tag wins)."""
    header = request.headers.get("accept-language", "") if request is not None else ""
    for part in header.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("en"):
            return "en"
        if tag.startswith("zh"):
            return "zh"
    return default


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def message(code: str, lang: str, **params) -> str:
    """The localised message; a parameter the error did not give is left out (never a raw ``{name}``)."""
    zh, en = MESSAGES.get(code, MESSAGES["bad_request"])
    template = en if lang == "en" else zh
    return re.sub(
        r"\s{2,}|\s+(?=[:：）)])|（\s*）|\(\s*\)",
        lambda m: " " if m.group(0).isspace() and len(m.group(0)) > 1 else "",
        template.format_map(_Blank(params)),
    ).strip()


class ApiError(Exception):
    """An answer with an HTTP status, a message code and its parameters (``detail`` adds the specifics)."""

    def __init__(self, status: int, code: str, detail: str | None = None, **params):
        super().__init__(detail or code)
        self.status, self.code, self.detail, self.params = status, code, detail, params


_SQL = re.compile(r"\[SQL: .*?\]|\[parameters: .*?\]|\(Background on this error at: [^)]*\)", re.S)
_URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"),;]*")
_PATH = re.compile(r"(?<![\w.~/:-])(?:/[^\s/'\":,;()\[\]]+){2,}/?")
_SECRETS: set[str] = set()


def hide(*secrets: str) -> None:
    """Values never to show a client (API keys, the callback secret): :func:`scrub` masks them."""
    _SECRETS.update(s for s in secrets if s and len(s) >= 4)


def scrub(text: str) -> str:
    """A message as a client may read it: no SQL, no store URIs, no absolute server paths (a path's last part
    stays, e.g. the file a client named), no configured secret."""
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    text = _SQL.sub("", text)
    text = _URI.sub(lambda m: m.group(0).split("://", 1)[0] + "://…", text)
    return _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "/", text).strip()


def _body(status: int, code: str, text: str, detail: str | None) -> dict:
    return {"detail": f"{text}: {scrub(detail)}" if detail else text, "code": code, "status": status}


def error_response(request: Request, status: int, code: str, detail: str | None = None,
                   headers: dict[str, str] | None = None, **params) -> Response:  # fmt: skip
    from api.state import settings_of

    settings = settings_of(request)
    default = "en" if is_v1(request.url.path) else settings.language if settings is not None else "zh"
    lang = language(request, default)
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    body = _body(status, code, message(code, lang, **params), detail)
    if is_v1(request.url.path):  # OpenAI's shape on its routes
        from api.v1 import openai_error

        body = openai_error(status, code, body["detail"], params.get("name"))
    return Response(body, status_code=status, headers=headers or None)


def is_v1(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def handle_api_error(request: Request, exc: ApiError) -> Response:
    return error_response(request, exc.status, exc.code, exc.detail, **exc.params)


def handle_validation(request: Request, exc: ValidationException) -> Response:
    """Litestar's check of a query or path parameter: 422 naming it and what is wrong, as the forms' own checks."""
    problems = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    if problems:
        name = str(problems[0].get("key") or "?")
        detail = "; ".join(f"{e.get('key')}: {e.get('message')}" for e in problems)
        return error_response(request, 422, "invalid", detail[:500], name=name)
    missing = re.search(r"Missing required \w+ parameter '([^']+)'", str(exc.detail))
    if missing:
        return error_response(request, 422, "missing", None, name=missing.group(1))
    return error_response(request, 422, "invalid", str(exc.detail)[:500], name="?")


def handle_http(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotAuthorizedException):
        return error_response(request, 401, "unauthorized")
    if isinstance(exc, RouteNotFound):
        return error_response(request, 404, "not_found", exc.detail if exc.detail != "Not Found" else None)
    if exc.status_code >= 500:
        return handle_internal(request, exc)
    if exc.status_code == 405:  # RFC 9110: the answer lists the methods allowed
        allow = (exc.headers or {}).get("allow", "")
        return error_response(request, 405, "method", f"allowed: {allow}" if allow else None,
                              headers={"Allow": allow} if allow else None, method=request.method)  # fmt: skip
    code = {413: "too_large", 415: "media_type"}.get(exc.status_code, "bad_request")
    from api.state import settings_of

    settings = settings_of(request)
    limit_mb = round(settings.limits.upload_bytes / 2**20, 1) if exc.status_code == 413 and settings else 0
    media = request.headers.get("content-type", "?")[:100]
    return error_response(request, exc.status_code, code, str(exc.detail), limit_mb=limit_mb, media=media)


def handle_library(request: Request, exc: Exception) -> Response:
    """A library error caused by the request: its own message names the problem."""
    from mockvox.audio.io import AudioError
    from mockvox.data.pipeline import RevisionError

    name = "file" if isinstance(exc, AudioError) else "results" if isinstance(exc, RevisionError) else "id"
    return error_response(request, *library_status(exc), str(exc), name=name)


def library_status(exc: Exception) -> tuple[int, str]:
    from mockvox.data.pipeline import DatasetBusy
    from mockvox.data.store import DatasetNotFound
    from mockvox.infer.registry import ModelNotFound
    from mockvox.infer.voices import VoicesBusy

    if isinstance(exc, DatasetBusy):
        return 409, "busy"
    if isinstance(exc, VoicesBusy):
        return 503, "unavailable"
    if isinstance(exc, DatasetNotFound):
        return 404, "dataset_not_found"
    if isinstance(exc, ModelNotFound):
        return 404, "model_not_found"
    return 422, "invalid"


def handle_internal(request: Request, exc: Exception) -> Response:
    from kombu.exceptions import OperationalError

    if isinstance(exc, HTTPException) and "client disconnected" in str(exc.detail):
        log.debug("%s %s: the client went away", request.method, request.url.path)
        return error_response(request, 400, "bad_body", "the client disconnected before the body ended")

    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        log.warning("broker or store unreachable: %s", exc)
        return error_response(request, 503, "unavailable", str(exc))
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, "internal")


def exception_handlers() -> dict:
    from mockvox.audio.io import AudioError
    from mockvox.data.datasets import NotEnoughSpeech
    from mockvox.data.ids import InvalidIdError
    from mockvox.data.pipeline import DatasetBusy, RevisionError
    from mockvox.data.store import DatasetNotFound
    from mockvox.infer.pipeline import SynthesisError
    from mockvox.infer.registry import ModelNotFound
    from mockvox.infer.voices import VoicesBusy

    library = (AudioError, NotEnoughSpeech, InvalidIdError, RevisionError, DatasetNotFound, SynthesisError,
               ModelNotFound, DatasetBusy, VoicesBusy)  # fmt: skip
    handlers: dict = {ApiError: handle_api_error, ValidationException: handle_validation, HTTPException: handle_http}
    handlers.update({cls: handle_library for cls in library})
    handlers[Exception] = handle_internal
    return handlers
