"""A Python client for the MockVox REST API: :class:`MockVoxClient` (sync) and :class:`AsyncMockVoxClient` (the
same methods, awaited), on httpx; answers are the service's own msgspec structs (:mod:`api.schemas`, :mod:`api.v1`).

    from mockvox.client import MockVoxClient

    with MockVoxClient("http://127.0.0.1:5000", api_key="KEY") as mv:
        queued = mv.upload("speaker.wav", language="en")  # sliced, denoised, transcribed by a worker
        mv.wait(queued.task_id, on_progress=lambda t: print(t.status, t.progress, t.stage))
        task = mv.wait(mv.train(queued.file_id, version="v2").task_id)  # TaskFailed if it fails or is cancelled
        model_id = task.results["model_id"]
        ref = mv.upload_ref("ref.wav", text="The quick brown fox.", language="en")
        mv.speak(model_id, "Good morning.", ref_id=ref.file_id, language="en", file="out.wav", seed=7)
        for chunk in mv.stream(model_id, "Good morning.", language="en"):  # 16-bit PCM as it is decoded
            play(chunk)

An answer other than 2xx raises :class:`MockVoxError` (``status``, the service's ``code``, ``message``, ``body``),
whichever shape the route answers errors in (``{"detail", "code", "status"}``, or OpenAI's ``{"error": {...}}`` on
``/v1``). Synthesis parameters (``seed``, ``top_k``, ``speed``, ``max_tokens``, ...) are keywords passed through.
:meth:`MockVoxClient.speech_session` opens the text-in WebSocket (``/v1/audio/speech/stream-input``): text is sent
as it comes, audio is read as it is made.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import msgspec

from api.schemas import Deleted, Health, ModelOut, ModelPage, Queued, RefOut, RefPage, Revised, TaskOut

if TYPE_CHECKING:
    from api.v1 import ModelList, VoiceDeleted, VoiceList, VoiceOut

__all__ = ["AsyncMockVoxClient", "AsyncSpeechSession", "MockVoxClient", "MockVoxError", "SpeechSession", "TaskFailed"]

FINAL = ("SUCCESS", "FAILURE", "REVOKED")
STREAM_INPUT = "/v1/audio/speech/stream-input"
WS_MAX_SIZE = 64 << 20  # bytes of one WebSocket message (an audio segment in base64)
CLOSE_WAIT_S = 5.0  # after its final message, how long a session waits for the service to close the socket
_WS_STATUS = {"authentication_error": 401, "not_found_error": 404, "rate_limit_error": 429, "server_error": 500}


class MockVoxError(Exception):
    """An answer other than 2xx: its HTTP ``status``, the service's ``code`` (stable, to branch on), its
    ``message`` and the decoded ``body`` (JSON, or text)."""

    def __init__(self, status: int, code: str | None, message: str, body: Any = None):
        super().__init__(f"{status} {code or 'error'}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body

    @property
    def param(self) -> str | None:
        """The parameter a ``/v1`` error names (OpenAI's ``param``)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("param") if isinstance(error, dict) else None


class TaskFailed(RuntimeError):
    """A task that ended ``FAILURE`` or ``REVOKED`` (cancelled); ``task`` is its final state."""

    def __init__(self, task: TaskOut):
        super().__init__(f"task {task.task_id} {task.status}" + (f": {task.error}" if task.error else ""))
        self.task = task


def _error(status: int, content: bytes, reason: str = "") -> MockVoxError:
    """The service's error from an answer's body, in either of its shapes."""
    try:
        body: Any = json.loads(content)
    except ValueError:
        body = content.decode(errors="replace")
    code = message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # /v1: {"error": {"message", "type", "param", "code"}}
            code, message = error.get("code"), error.get("message")
        else:  # {"detail", "code", "status"}
            code, message = body.get("code"), body.get("detail")
    return MockVoxError(status, code, str(message or reason or body)[:2000], body)


def _ws_error(event: dict) -> MockVoxError:
    """A WebSocket ``{"type": "error", "error": {...}}`` message (its status from the error's type when absent)."""
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    status = error.get("status") or _WS_STATUS.get(error.get("type", ""), 422)
    return MockVoxError(int(status), error.get("code"), str(error.get("message") or event), event)


@dataclass(frozen=True)
class _Call:
    """One request: method, path (under the base URL), what its answer decodes to (``bytes``: as is)."""

    method: str
    path: str
    type: Any
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    file: tuple[str, Path] | None = None  # a multipart file field and the file it sends
    ok: tuple[int, ...] = ()  # statuses past 2xx that still carry the typed body (/health's 503)

    @contextlib.contextmanager
    def sent(self) -> Iterator[dict[str, Any]]:
        """httpx's keywords for the request, its file open while it is sent."""
        with contextlib.ExitStack() as stack:
            files = None
            if self.file is not None:
                field, path = self.file
                files = {field: (path.name, stack.enter_context(path.open("rb")))}
            yield {"params": self.params, "json": self.json, "data": self.data, "files": files}

    def decoded(self, resp: httpx.Response) -> Any:
        """The answer as :attr:`type`; :class:`MockVoxError` for an error."""
        if not resp.is_success and resp.status_code not in self.ok:
            raise _error(resp.status_code, resp.content, resp.reason_phrase)
        return resp.content if self.type is bytes else msgspec.json.decode(resp.content, type=self.type)


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _form(values: Mapping[str, Any]) -> dict[str, str]:
    """Multipart fields as text (booleans as ``true`` / ``false``, lists and objects as JSON)."""
    return {k: json.dumps(v) if isinstance(v, list | dict) else _text(v) for k, v in _clean(values).items()}


def _text(value: Any) -> Any:
    return "true" if value is True else "false" if value is False else str(value)


def _query(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _text(v) if isinstance(v, bool) else v for k, v in _clean(values).items()}


def _seg(value: str) -> str:
    """An id in a path: ``models:/NAME/VERSION`` keeps its slashes (the routes take them), the rest is escaped."""
    return quote(str(value), safe="/:@")


def _task_id(task: str | Queued | TaskOut) -> str:
    return task if isinstance(task, str) else task.task_id


def _results(results: Mapping[str, str] | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(results, Mapping):
        return [{"key": k, "text": v} for k, v in results.items()]
    return [{"key": r["key"], "text": r["text"]} for r in results]


def _speech(model_id: str, text: str, ref_id: str | None, ref_text: str | None, language: str, response_format: str,
            params: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """``/v1/audio/speech``'s body: ``voice`` a reference (id or name), or the model itself for its own reference."""
    body = {"model": model_id, "input": text, "voice": ref_id or model_id, "response_format": response_format,
            "language": language, "ref_text": ref_text, **params}  # fmt: skip
    return _clean(body)


def _synthesis(model_id: str, text: str, ref_id: str | None, ref_text: str | None, ref_language: str | None,
               language: str, params: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """``/inference``'s and ``/streamInference``'s fields."""
    return _clean({"model_id": model_id, "target_text": text, "ref_audio_file_id": ref_id, "ref_text": ref_text,
                   "ref_language": ref_language, "target_language": language, **params})  # fmt: skip


def _v1(name: str) -> Any:
    import api.v1  # the synthesis stack behind it loads slowly: only when a /v1 route is used

    return getattr(api.v1, name)


def _ws_uri(base_url: str, model_id: str, voice: str | None, response_format: str, language: str, output: str,
            min_chars: int | None) -> str:  # fmt: skip
    scheme, rest = base_url.split("://", 1)
    ws = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    query = _query({"model": model_id, "voice": voice or model_id, "response_format": response_format,
                    "language": language, "output": output, "min_chars": min_chars})  # fmt: skip
    return f"{ws}://{rest}{STREAM_INPUT}?{urlencode(query)}"


class _Routes:
    """The requests of the API (shared by both clients); each method returns the :class:`_Call` its client sends."""

    @staticmethod
    def upload(path: str | Path, language: str, denoise: bool, callback_url: str | None) -> _Call:
        form = _form({"language": language, "denoise": denoise, "callback_url": callback_url})
        return _Call("POST", "/upload", Queued, data=form, file=("file", Path(path)))

    @staticmethod
    def add(file_id: str, path: str | Path, callback_url: str | None) -> _Call:
        form = _form({"file_id": file_id, "callback_url": callback_url})
        return _Call("POST", "/add", Queued, data=form, file=("file", Path(path)))

    @staticmethod
    def revise(file_id: str, results, remove: Iterable[str]) -> _Call:
        body = {"file_id": file_id, "results": _results(results), "remove": list(remove)}
        return _Call("POST", "/revision", Revised, json=body)

    @staticmethod
    def train(file_id: str, epochs_sovits: int, epochs_gpt: int, version: str, denoised: bool, overrides,
              callback_url: str | None) -> _Call:  # fmt: skip
        body = {"file_id": file_id, "epochs_sovits": epochs_sovits, "epochs_gpt": epochs_gpt, "version": version,
                "denoised": denoised, "overrides": overrides, "callback_url": callback_url}  # fmt: skip
        return _Call("POST", "/train", Queued, json=_clean(body))

    @staticmethod
    def resume(model_id: str, epochs_sovits: int, epochs_gpt: int, overrides, callback_url: str | None) -> _Call:
        body = {"model_id": model_id, "epochs_sovits": epochs_sovits, "epochs_gpt": epochs_gpt,
                "overrides": overrides, "callback_url": callback_url}  # fmt: skip
        return _Call("POST", "/resume", Queued, json=_clean(body))

    @staticmethod
    def upload_ref(path: str | Path, text: str | None, language: str | None) -> _Call:
        form = _form({"text": text, "language": language})
        return _Call("POST", "/uploadRef", RefOut, data=form, file=("file", Path(path)))

    @staticmethod
    def create_voice(path: str | Path, name: str, transcript: str | None, language: str | None) -> _Call:
        form = _form({"name": name, "transcript": transcript, "language": language})
        return _Call("POST", "/v1/audio/voices", _v1("VoiceOut"), data=form, file=("audio_sample", Path(path)))


class MockVoxClient:
    """The MockVox API from Python (blocking calls, one ``httpx.Client``).

    Args:
        base_url: the service, e.g. ``http://127.0.0.1:5000``.
        api_key: sent as ``Authorization: Bearer <key>`` (none: a service without keys).
        timeout: seconds httpx waits to connect, and between two pieces of an answer.
        headers: more headers for every request (``{"Accept-Language": "en"}``: English error messages).
        http_client: an ``httpx.Client`` to send with (a test's ``litestar.testing.TestClient``); left open.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float | httpx.Timeout | None = 60.0, *,
                 headers: Mapping[str, str] | None = None, http_client: httpx.Client | None = None):  # fmt: skip
        self.base_url, self.api_key, self.timeout = base_url.rstrip("/"), api_key, timeout
        self.headers = {**(headers or {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self._own = http_client is None

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> MockVoxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- transport --------------------------------------------------------------------------------------------------
    def _call(self, call: _Call) -> Any:
        with call.sent() as kwargs:
            resp = self._http.request(call.method, self.base_url + call.path, **kwargs, headers=self.headers)
        return call.decoded(resp)

    @contextlib.contextmanager
    def _stream(self, method: str, path: str, **kwargs) -> Iterator[httpx.Response]:
        with self._http.stream(method, self.base_url + path, headers=self.headers, **kwargs) as resp:
            if not resp.is_success:
                raise _error(resp.status_code, resp.read(), resp.reason_phrase)
            yield resp

    def _bytes(self, method: str, path: str, file: str | Path | None, **kwargs) -> bytes | Path:
        """An answer's bytes, or written to ``file`` as they come (then its path)."""
        with self._stream(method, path, **kwargs) as resp:
            if file is None:
                return resp.read()
            target = Path(file)
            with target.open("wb") as out:
                for chunk in resp.iter_bytes():
                    out.write(chunk)
            return target

    # --- datasets and training --------------------------------------------------------------------------------------
    def upload(self, path: str | Path, language: str = "zh", denoise: bool = True,
               callback_url: str | None = None) -> Queued:  # fmt: skip
        """Upload a recording (WAV / MP3 / FLAC / OGG): a new dataset (``file_id``); its slicing, denoising and ASR
        is the task ``task_id``."""
        return self._call(_Routes.upload(path, language, denoise, callback_url))

    def add(self, file_id: str, path: str | Path, callback_url: str | None = None) -> Queued:
        """Add a recording to the dataset ``file_id`` (processed the same way)."""
        return self._call(_Routes.add(file_id, path, callback_url))

    def revise(self, file_id: str, results: Mapping[str, str] | Iterable[Mapping[str, Any]],
               remove: Iterable[str] = ()) -> Revised:  # fmt: skip
        """Correct transcripts (``{key: text}`` or ``[{"key", "text"}]``; keys not named keep theirs) and drop the
        slices ``remove`` names: a new dataset version."""
        return self._call(_Routes.revise(file_id, results, remove))

    def dataset(self, file_id: str) -> dict[str, Any]:
        """The dataset's manifest: version, slices with their transcripts."""
        return self._call(_Call("GET", f"/datasets/{_seg(file_id)}", dict[str, Any]))

    def train(self, file_id: str, epochs_sovits: int = 1, epochs_gpt: int = 1, version: str = "v4",
              overrides: list[str] | Mapping[str, Any] | None = None, *, denoised: bool = True,
              callback_url: str | None = None) -> Queued:  # fmt: skip
        """Train a voice on the dataset (``overrides``: ``["key=value"]`` or ``{key: value}`` of the service's
        allow-list); the finished task's ``results["model_id"]`` is the voice."""
        return self._call(_Routes.train(file_id, epochs_sovits, epochs_gpt, version, denoised, overrides, callback_url))

    def resume(self, model_id: str, epochs_sovits: int = 2, epochs_gpt: int = 2,
               overrides: list[str] | Mapping[str, Any] | None = None, *,
               callback_url: str | None = None) -> Queued:  # fmt: skip
        """Train a voice that many *more* epochs into a new model version (the old one stays)."""
        return self._call(_Routes.resume(model_id, epochs_sovits, epochs_gpt, overrides, callback_url))

    # --- tasks ------------------------------------------------------------------------------------------------------
    def task(self, task_id: str) -> TaskOut:
        """A task's state: PENDING, STARTED, PROGRESS (``progress`` %, ``stage``), SUCCESS, FAILURE or REVOKED."""
        return self._call(_Call("GET", f"/tasks/{_seg(task_id)}", TaskOut))

    def cancel(self, task_id: str) -> TaskOut:
        """Cancel a task: a queued one never runs, a running training stops at its next batch."""
        return self._call(_Call("DELETE", f"/tasks/{_seg(task_id)}", TaskOut))

    def wait(self, task_id: str | Queued, timeout: float | None = None, poll: float = 0.5,
             on_progress: Callable[[TaskOut], Any] | None = None) -> TaskOut:  # fmt: skip
        """Poll the task until it ends; ``on_progress(task)`` each time its status, progress or stage changes.

        Raises:
            TaskFailed: it ended FAILURE or REVOKED.
            TimeoutError: it had not ended after ``timeout`` seconds.
        """
        task_id = _task_id(task_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            task = self.task(task_id)
            if on_progress is not None and (task.status, task.progress, task.stage) != seen:
                on_progress(task)
            seen = (task.status, task.progress, task.stage)
            if task.status in FINAL:
                return _ended(task)
            time.sleep(_pause(task, deadline, poll))

    # --- voices (models) --------------------------------------------------------------------------------------------
    def models(self, limit: int = 50, page_token: str | None = None) -> ModelPage:
        """The caller's voices, newest first; ``next_page_token`` gives the next page."""
        return self._call(_Call("GET", "/models", ModelPage, params=_query({"limit": limit, "page_token": page_token})))

    def model(self, model_id: str) -> ModelOut:
        """A voice's version, epochs, dataset, metrics and registry entries (``m-…`` or ``models:/NAME@ALIAS``)."""
        return self._call(_Call("GET", f"/model/{_seg(model_id)}", ModelOut))

    def delete_model(self, model_id: str, keep_checkpoints: bool = False) -> Deleted:
        """Delete a voice (its registry versions, artifacts and, unless kept, its runs' training checkpoints)."""
        params = _query({"keep_checkpoints": keep_checkpoints})
        return self._call(_Call("DELETE", f"/model/{_seg(model_id)}", Deleted, params=params))

    # --- references -------------------------------------------------------------------------------------------------
    def upload_ref(self, path: str | Path, text: str | None = None, language: str | None = None) -> RefOut:
        """Keep a 3-10 s reference recording with its transcript (``text``) and language."""
        return self._call(_Routes.upload_ref(path, text, language))

    def refs(self, offset: int = 0, limit: int = 50) -> RefPage:
        """The caller's references, oldest first."""
        return self._call(_Call("GET", "/refs", RefPage, params={"offset": offset, "limit": limit}))

    def ref(self, ref_id: str) -> RefOut:
        return self._call(_Call("GET", f"/refs/{_seg(ref_id)}", RefOut))

    def delete_ref(self, ref_id: str) -> Deleted:
        return self._call(_Call("DELETE", f"/refs/{_seg(ref_id)}", Deleted))

    # --- synthesis --------------------------------------------------------------------------------------------------
    def speak(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
              language: str = "zh", file: str | Path | None = None, response_format: str = "wav",
              **params: Any) -> bytes | Path:  # fmt: skip
        """Speech in a voice (``POST /v1/audio/speech``): its bytes in ``response_format`` (wav, pcm, mp3, opus,
        aac, flac), or written to ``file`` (then its path). ``ref_id``: a reference's id or a voice's name (absent:
        the voice's own reference); the route speaks with the transcript kept with the reference, so ``ref_text`` is
        sent only when given (a service whose route has no such field answers 422); ``params``: synthesis settings
        (``seed``, ``top_k``, ``speed``, ``max_tokens``, ``streaming_mode``, ...)."""
        body = _speech(model_id, text, ref_id, ref_text, language, response_format, params)
        return self._bytes("POST", "/v1/audio/speech", file, json=body)

    def stream(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
               language: str = "zh", response_format: str = "pcm", chunk_size: int | None = None,
               **params: Any) -> Iterator[bytes]:  # fmt: skip
        """The same speech as :meth:`speak`, its bytes as they arrive (pcm: 16-bit little-endian mono at the voice's
        rate, no header). The request is sent when the iteration starts; closing the iterator ends it."""
        body = _speech(model_id, text, ref_id, ref_text, language, response_format, params)
        with self._stream("POST", "/v1/audio/speech", json=body) as resp:
            yield from resp.iter_bytes(chunk_size)

    def stream_inference(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
                         ref_language: str | None = None, language: str = "zh", chunk_size: int | None = None,
                         **params: Any) -> Iterator[bytes]:  # fmt: skip
        """``GET /streamInference``: a WAV header (sizes 0xFFFFFFFF), then 16-bit PCM as each chunk is decoded;
        ``params`` also takes ``streaming_mode``, ``first_chunk_length``, ``min_chunk_length`` (and ``media_type``
        where the service offers other formats)."""
        query = _query(_synthesis(model_id, text, ref_id, ref_text, ref_language, language, params))
        with self._stream("GET", "/streamInference", params=query) as resp:
            yield from resp.iter_bytes(chunk_size)

    def inference(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
                  ref_language: str | None = None, language: str = "zh", callback_url: str | None = None,
                  **params: Any) -> Queued:  # fmt: skip
        """Queue a synthesis (``POST /inference``); its audio is :meth:`output` once the task succeeded."""
        body = _synthesis(model_id, text, ref_id, ref_text, ref_language, language, params)
        body = _clean({**body, "callback_url": callback_url})
        return self._call(_Call("POST", "/inference", Queued, json=body))

    def output(self, task_id: str, file: str | Path | None = None, format: str | None = None) -> bytes | Path:
        """A finished synthesis task's audio (WAV; ``format`` asks for another where the service offers it): its
        bytes, or written to ``file`` (then its path). 409 while it runs, 410 once expired."""
        return self._bytes("GET", f"/output/{_seg(task_id)}", file, params=_query({"format": format}))

    def speech_session(self, model_id: str, voice: str | None = None, response_format: str = "pcm",
                       language: str = "auto", *, output: str = "json", min_chars: int | None = None,
                       **options: Any) -> SpeechSession:  # fmt: skip
        """A text-in, audio-out session on ``WS /v1/audio/speech/stream-input``, connected here: ``send`` text as it
        comes, ``end``, iterate the audio (:class:`SpeechSession`). ``voice``: a reference id or a voice's name
        (absent: the model's own); ``output``: ``json`` (audio in base64 with its segment's details, kept in
        ``events``) or ``binary`` frames; ``min_chars``: the shortest segment the service cuts; ``options``:
        synthesis settings (``seed``, ``top_k``, ``speed``, ``streaming_mode``, ...), sent in the first message.

        Raises:
            MockVoxError: the service refused the connection (the service's own checks come as error messages,
                raised while iterating).
        """
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        uri = _ws_uri(self.base_url, model_id, voice, response_format, language, output, min_chars)
        timeout = self.timeout if isinstance(self.timeout, int | float) else 60.0
        try:
            ws = connect(uri, additional_headers=self.headers, open_timeout=timeout, max_size=WS_MAX_SIZE)
        except InvalidStatus as exc:
            raise _error(exc.response.status_code, exc.response.body or b"", exc.response.reason_phrase) from None
        session = SpeechSession(ws)
        if options:
            ws.send(json.dumps({"options": _clean(options)}))
        return session

    # --- OpenAI's voices and models ---------------------------------------------------------------------------------
    def create_voice(self, path: str | Path, name: str, transcript: str | None = None,
                     language: str | None = None) -> VoiceOut:  # fmt: skip
        """A named voice from a 3-10 s sample (``POST /v1/audio/voices``); without ``transcript`` Whisper writes it."""
        return self._call(_Routes.create_voice(path, name, transcript, language))

    def voices(self, limit: int = 50, offset: int = 0) -> VoiceList:
        return self._call(_Call("GET", "/v1/audio/voices", _v1("VoiceList"), params={"limit": limit, "offset": offset}))

    def delete_voice(self, voice_id: str) -> VoiceDeleted:
        return self._call(_Call("DELETE", f"/v1/audio/voices/{_seg(voice_id)}", _v1("VoiceDeleted")))

    def openai_models(self, limit: int = 50, page_token: str | None = None) -> ModelList:
        """The caller's voices as OpenAI models (``GET /v1/models``)."""
        params = _query({"limit": limit, "page_token": page_token})
        return self._call(_Call("GET", "/v1/models", _v1("ModelList"), params=params))

    # --- service ----------------------------------------------------------------------------------------------------
    def health(self) -> Health:
        """Readiness: ``status`` ok, or degraded / starting (the service's 503, returned here, not raised)."""
        return self._call(_Call("GET", "/health", Health, ok=(503,)))


def _ended(task: TaskOut) -> TaskOut:
    if task.status != "SUCCESS":
        raise TaskFailed(task)
    return task


def _pause(task: TaskOut, deadline: float | None, poll: float) -> float:
    if deadline is None:
        return poll
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"task {task.task_id} is still {task.status} ({task.progress:g} %)")
    return min(poll, left)


class AsyncMockVoxClient:
    """:class:`MockVoxClient`'s methods, awaited (one ``httpx.AsyncClient``); :meth:`stream` and
    :meth:`stream_inference` are async iterators, :meth:`speech_session` an async context manager."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float | httpx.Timeout | None = 60.0, *,
                 headers: Mapping[str, str] | None = None, http_client: httpx.AsyncClient | None = None):  # fmt: skip
        self.base_url, self.api_key, self.timeout = base_url.rstrip("/"), api_key, timeout
        self.headers = {**(headers or {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
        self._own = http_client is None

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMockVoxClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _call(self, call: _Call) -> Any:
        with call.sent() as kwargs:
            resp = await self._http.request(call.method, self.base_url + call.path, **kwargs, headers=self.headers)
        return call.decoded(resp)

    @contextlib.asynccontextmanager
    async def _stream(self, method: str, path: str, **kwargs) -> AsyncIterator[httpx.Response]:
        async with self._http.stream(method, self.base_url + path, headers=self.headers, **kwargs) as resp:
            if not resp.is_success:
                raise _error(resp.status_code, await resp.aread(), resp.reason_phrase)
            yield resp

    async def _bytes(self, method: str, path: str, file: str | Path | None, **kwargs) -> bytes | Path:
        async with self._stream(method, path, **kwargs) as resp:
            if file is None:
                return await resp.aread()
            target = Path(file)
            with target.open("wb") as out:
                async for chunk in resp.aiter_bytes():
                    out.write(chunk)
            return target

    async def upload(self, path: str | Path, language: str = "zh", denoise: bool = True,
                     callback_url: str | None = None) -> Queued:  # fmt: skip
        return await self._call(_Routes.upload(path, language, denoise, callback_url))

    async def add(self, file_id: str, path: str | Path, callback_url: str | None = None) -> Queued:
        return await self._call(_Routes.add(file_id, path, callback_url))

    async def revise(self, file_id: str, results: Mapping[str, str] | Iterable[Mapping[str, Any]],
                     remove: Iterable[str] = ()) -> Revised:  # fmt: skip
        return await self._call(_Routes.revise(file_id, results, remove))

    async def dataset(self, file_id: str) -> dict[str, Any]:
        return await self._call(_Call("GET", f"/datasets/{_seg(file_id)}", dict[str, Any]))

    async def train(self, file_id: str, epochs_sovits: int = 1, epochs_gpt: int = 1, version: str = "v4",
                    overrides: list[str] | Mapping[str, Any] | None = None, *, denoised: bool = True,
                    callback_url: str | None = None) -> Queued:  # fmt: skip
        call = _Routes.train(file_id, epochs_sovits, epochs_gpt, version, denoised, overrides, callback_url)
        return await self._call(call)

    async def resume(self, model_id: str, epochs_sovits: int = 2, epochs_gpt: int = 2,
                     overrides: list[str] | Mapping[str, Any] | None = None, *,
                     callback_url: str | None = None) -> Queued:  # fmt: skip
        return await self._call(_Routes.resume(model_id, epochs_sovits, epochs_gpt, overrides, callback_url))

    async def task(self, task_id: str) -> TaskOut:
        return await self._call(_Call("GET", f"/tasks/{_seg(task_id)}", TaskOut))

    async def cancel(self, task_id: str) -> TaskOut:
        return await self._call(_Call("DELETE", f"/tasks/{_seg(task_id)}", TaskOut))

    async def wait(self, task_id: str | Queued, timeout: float | None = None, poll: float = 0.5,
                   on_progress: Callable[[TaskOut], Any] | None = None) -> TaskOut:  # fmt: skip
        """As :meth:`MockVoxClient.wait`; ``on_progress`` may be a coroutine function."""
        task_id = _task_id(task_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            task = await self.task(task_id)
            if on_progress is not None and (task.status, task.progress, task.stage) != seen:
                result = on_progress(task)
                if inspect.isawaitable(result):
                    await result
            seen = (task.status, task.progress, task.stage)
            if task.status in FINAL:
                return _ended(task)
            await asyncio.sleep(_pause(task, deadline, poll))

    async def models(self, limit: int = 50, page_token: str | None = None) -> ModelPage:
        params = _query({"limit": limit, "page_token": page_token})
        return await self._call(_Call("GET", "/models", ModelPage, params=params))

    async def model(self, model_id: str) -> ModelOut:
        return await self._call(_Call("GET", f"/model/{_seg(model_id)}", ModelOut))

    async def delete_model(self, model_id: str, keep_checkpoints: bool = False) -> Deleted:
        params = _query({"keep_checkpoints": keep_checkpoints})
        return await self._call(_Call("DELETE", f"/model/{_seg(model_id)}", Deleted, params=params))

    async def upload_ref(self, path: str | Path, text: str | None = None, language: str | None = None) -> RefOut:
        return await self._call(_Routes.upload_ref(path, text, language))

    async def refs(self, offset: int = 0, limit: int = 50) -> RefPage:
        return await self._call(_Call("GET", "/refs", RefPage, params={"offset": offset, "limit": limit}))

    async def ref(self, ref_id: str) -> RefOut:
        return await self._call(_Call("GET", f"/refs/{_seg(ref_id)}", RefOut))

    async def delete_ref(self, ref_id: str) -> Deleted:
        return await self._call(_Call("DELETE", f"/refs/{_seg(ref_id)}", Deleted))

    async def speak(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
                    language: str = "zh", file: str | Path | None = None, response_format: str = "wav",
                    **params: Any) -> bytes | Path:  # fmt: skip
        body = _speech(model_id, text, ref_id, ref_text, language, response_format, params)
        return await self._bytes("POST", "/v1/audio/speech", file, json=body)

    async def stream(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
                     language: str = "zh", response_format: str = "pcm", chunk_size: int | None = None,
                     **params: Any) -> AsyncIterator[bytes]:  # fmt: skip
        body = _speech(model_id, text, ref_id, ref_text, language, response_format, params)
        async with self._stream("POST", "/v1/audio/speech", json=body) as resp:
            async for chunk in resp.aiter_bytes(chunk_size):
                yield chunk

    async def stream_inference(self, model_id: str, text: str, *, ref_id: str | None = None,
                               ref_text: str | None = None, ref_language: str | None = None, language: str = "zh",
                               chunk_size: int | None = None, **params: Any) -> AsyncIterator[bytes]:  # fmt: skip
        query = _query(_synthesis(model_id, text, ref_id, ref_text, ref_language, language, params))
        async with self._stream("GET", "/streamInference", params=query) as resp:
            async for chunk in resp.aiter_bytes(chunk_size):
                yield chunk

    async def inference(self, model_id: str, text: str, *, ref_id: str | None = None, ref_text: str | None = None,
                        ref_language: str | None = None, language: str = "zh", callback_url: str | None = None,
                        **params: Any) -> Queued:  # fmt: skip
        body = _synthesis(model_id, text, ref_id, ref_text, ref_language, language, params)
        body = _clean({**body, "callback_url": callback_url})
        return await self._call(_Call("POST", "/inference", Queued, json=body))

    async def output(self, task_id: str, file: str | Path | None = None, format: str | None = None) -> bytes | Path:
        return await self._bytes("GET", f"/output/{_seg(task_id)}", file, params=_query({"format": format}))

    def speech_session(self, model_id: str, voice: str | None = None, response_format: str = "pcm",
                       language: str = "auto", *, output: str = "json", min_chars: int | None = None,
                       **options: Any) -> AsyncSpeechSession:  # fmt: skip
        """As :meth:`MockVoxClient.speech_session`, connected on ``async with`` (or ``await session.connect()``)."""
        uri = _ws_uri(self.base_url, model_id, voice, response_format, language, output, min_chars)
        timeout = self.timeout if isinstance(self.timeout, int | float) else 60.0
        return AsyncSpeechSession(uri, self.headers, timeout, _clean(options))

    async def create_voice(self, path: str | Path, name: str, transcript: str | None = None,
                           language: str | None = None) -> VoiceOut:  # fmt: skip
        return await self._call(_Routes.create_voice(path, name, transcript, language))

    async def voices(self, limit: int = 50, offset: int = 0) -> VoiceList:
        params = {"limit": limit, "offset": offset}
        return await self._call(_Call("GET", "/v1/audio/voices", _v1("VoiceList"), params=params))

    async def delete_voice(self, voice_id: str) -> VoiceDeleted:
        return await self._call(_Call("DELETE", f"/v1/audio/voices/{_seg(voice_id)}", _v1("VoiceDeleted")))

    async def openai_models(self, limit: int = 50, page_token: str | None = None) -> ModelList:
        params = _query({"limit": limit, "page_token": page_token})
        return await self._call(_Call("GET", "/v1/models", _v1("ModelList"), params=params))

    async def health(self) -> Health:
        return await self._call(_Call("GET", "/health", Health, ok=(503,)))


# --- the text-in WebSocket -------------------------------------------------------------------------------------------
class _Events:
    """What a session has read: each JSON audio message's details without its audio (``segment``, ``text``,
    ``start``, ``end``, ``final_segment``) and the ``final`` message (``segments``, ``seconds``, ``chars``)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None

    def _audio(self, message: str | bytes) -> bytes:
        """A message's audio (``b""``: none); a ``final`` message is kept, an ``error`` one raised."""
        if isinstance(message, bytes):  # output=binary
            return message
        event = json.loads(message)
        kind = event.get("type")
        if kind == "audio":
            self.events.append({k: v for k, v in event.items() if k != "audio"})
            return base64.b64decode(event.get("audio") or "")
        if kind == "final":
            self.final = event
        elif kind == "error":
            raise _ws_error(event)
        return b""


class SpeechSession(_Events):
    """A sync text-in session (:meth:`MockVoxClient.speech_session`): ``send`` text, ``flush`` to have what was sent
    spoken now, ``end``; iterating gives the audio as bytes (one continuous file of the format) until the service's
    ``final`` message. Sending and reading may run in two threads (an LLM's tokens in, audio out).

        with mv.speech_session(model_id, language="en") as session:
            session.send("Hello there. ")
            session.send("How are you?")
            session.end()
            audio = b"".join(session)
    """

    def __init__(self, connection) -> None:
        super().__init__()
        self._ws = connection

    def send(self, text: str) -> None:
        """More text (an empty one is not sent: it would end the session)."""
        if text:
            self._ws.send(json.dumps({"text": text}))

    def flush(self) -> None:
        self._ws.send(json.dumps({"flush": True}))

    def end(self) -> None:
        """No more text: what is pending is spoken, then the service sends ``final``."""
        self._ws.send(json.dumps({"text": ""}))

    def __iter__(self) -> Iterator[bytes]:
        from websockets.exceptions import ConnectionClosedOK

        while self.final is None:
            try:
                message = self._ws.recv()
            except ConnectionClosedOK:
                return
            audio = self._audio(message)
            if audio:
                yield audio

    def close(self) -> None:
        """Close the connection; after ``final``, once the service closed it (its close comes right after)."""
        from websockets.exceptions import ConnectionClosed

        if self.final is not None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                self._ws.recv(timeout=CLOSE_WAIT_S)
        self._ws.close()

    def __enter__(self) -> SpeechSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncSpeechSession(_Events):
    """:class:`SpeechSession` for asyncio (:meth:`AsyncMockVoxClient.speech_session`): ``async with``, awaited
    ``send`` / ``flush`` / ``end``, ``async for`` over the audio."""

    def __init__(self, uri: str, headers: Mapping[str, str], open_timeout: float,
                 options: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.uri, self._headers, self._open_timeout, self._options = uri, dict(headers), open_timeout, options
        self._ws: Any = None

    async def connect(self) -> AsyncSpeechSession:
        """Open the connection.

        Raises:
            MockVoxError: the service refused it (401, 404, 422, ...).
        """
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            self._ws = await connect(self.uri, additional_headers=self._headers, open_timeout=self._open_timeout,
                                     max_size=WS_MAX_SIZE)  # fmt: skip
        except InvalidStatus as exc:
            raise _error(exc.response.status_code, exc.response.body or b"", exc.response.reason_phrase) from None
        if self._options:
            await self._ws.send(json.dumps({"options": self._options}))
        return self

    async def send(self, text: str) -> None:
        if text:
            await self._ws.send(json.dumps({"text": text}))

    async def flush(self) -> None:
        await self._ws.send(json.dumps({"flush": True}))

    async def end(self) -> None:
        await self._ws.send(json.dumps({"text": ""}))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        from websockets.exceptions import ConnectionClosedOK

        while self.final is None:
            try:
                message = await self._ws.recv()
            except ConnectionClosedOK:
                return
            audio = self._audio(message)
            if audio:
                yield audio

    async def close(self) -> None:
        if self._ws is None:
            return
        if self.final is not None:  # the service closes right after its final message: let it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ws.wait_closed(), CLOSE_WAIT_S)
        await self._ws.close()

    async def __aenter__(self) -> AsyncSpeechSession:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()
