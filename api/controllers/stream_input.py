"""``WS /v1/audio/speech/stream-input``: text in as it arrives (an LLM's tokens), audio out as it is decoded.

Modelled on ElevenLabs' ``stream-input``. The query names the voice: ``model`` (required), ``voice`` (default:
the model's own reference), ``response_format`` (``pcm`` default, or any of /v1/audio/speech's), ``language``
(``auto``), ``output`` (``json`` default, or ``binary``), ``min_chars``.

Client messages (JSON text frames):

- ``{"text": "..."}``: more text; it is cut at sentence ends (:class:`~mockvox.infer.incremental.TextSegmenter`)
  and each segment is spoken as soon as it is complete. ``"flush": true`` in the same or its own message speaks
  what is buffered now.
- ``{"text": ""}``: the end; what is buffered is spoken, then the final message comes. A client that closes the
  socket before its end stops the synthesis.
- The first message may carry ``"api_key"`` (instead of an ``Authorization`` / ``X-API-Key`` header) and
  ``"options"``: synthesis settings of /v1/audio/speech (``seed``, ``top_k``, ``speed``, ``streaming_mode``, …).

Server messages: the audio of one continuous file of ``response_format`` (one WAV header in all), either as binary
frames (``output=binary``) or as ``{"type": "audio", "audio": "<base64>", "segment": i, "text": "...", "start":
s, "end": e}`` (``start``/``end``: character offsets of the segment in all the text received); a segment's last
chunk has ``"final_segment": true``. Then ``{"type": "final", "segments", "seconds", "chars"}``, and the socket
closes (1000). An error is ``{"type": "error", "error": {"message", "type", "param", "code"}}``, then a close with
1008 (the request) or 1011 (the server).

Bounds: every text message is checked (``limits.text_chars`` per message, ``websocket.session_chars`` in all); at
most ``websocket.queued_segments`` segments wait for synthesis, beyond which the server stops reading (the client's
sends wait: back-pressure both ways); a send waits at most ``websocket.send_timeout_s`` for a client that does not
read, then the socket is dropped and its synthesis stopped; ``websocket.idle_s`` without a message closes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging

from anyio import to_thread
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from api.errors import ApiError, message
from mockvox.audio.encode import StreamEncoder
from mockvox.infer.incremental import TextSegmenter

log = logging.getLogger("api.stream")
QUERY = ("model", "voice", "response_format", "language")


class _Closed(Exception):
    """The session ended (the client left, or was dropped)."""


class Session:
    """One socket: its caller, its voice, the segments waiting, the audio going out."""

    def __init__(self, socket: WebSocket):
        self.socket = socket
        self.services = socket.app.state.services
        self.limits = self.services.settings.websocket
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, self.limits.queued_segments))
        self.chars = 0
        self.binary = False
        self.segments = self.spoken = 0  # cut from the text so far / synthesised

    # --- messages -----------------------------------------------------------------------------------------------
    async def receive(self, timeout: float | None = None) -> dict:
        try:
            raw = await asyncio.wait_for(self.socket.receive_data("text"), timeout or self.limits.idle_s)
        except TimeoutError:
            raise ApiError(408, "invalid", f"no message for {self.limits.idle_s:g} s", name="idle") from None
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            raise ApiError(400, "bad_json", "a message must be a JSON object") from None
        if not isinstance(msg, dict):
            raise ApiError(400, "bad_json", "a message must be a JSON object")
        return msg

    async def send(self, data: bytes | dict) -> None:
        try:
            if isinstance(data, bytes):
                await asyncio.wait_for(self.socket.send_bytes(data), self.limits.send_timeout_s)
            else:
                await asyncio.wait_for(self.socket.send_json(data), self.limits.send_timeout_s)
        except TimeoutError:
            log.info("stream-input: the client took no audio for %g s; dropped after %d segment(s) of %d",
                     self.limits.send_timeout_s, self.spoken, self.segments)  # fmt: skip
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.socket.close(1008, "slow_reader"), 1)
            raise _Closed from None
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _Closed from None

    async def fail(self, exc: ApiError) -> None:
        from api.v1 import openai_error

        text = message(exc.code, "en", **exc.params)
        log.info("stream-input refused: %s %s (%s)", exc.status, exc.code, exc.detail)
        body = openai_error(exc.status, exc.code, f"{text}: {exc.detail}" if exc.detail else text,
                            exc.params.get("name"))  # fmt: skip
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.send_json({"type": "error", **body}), 5)
            await self.socket.close(1008 if exc.status < 500 else 1011, exc.code)

    # --- the request --------------------------------------------------------------------------------------------
    async def authenticate(self, first: dict | None) -> None:
        """The caller: the header's key (the guard named it), else the first message's ``api_key``."""
        from api.access import Caller, key_owner
        from api.auth import CALLER, _known

        settings = self.services.settings
        caller = self.socket.scope.get(CALLER)
        if not settings.keys_required or (caller is not None and caller.owner != "\0"):
            return
        given = str((first or {}).get("api_key") or (first or {}).get("xi_api_key") or "")
        admin, user = _known(given, settings.admin_keys), _known(given, settings.api_keys)
        if not (admin or user):
            raise ApiError(401, "unauthorized")
        self.socket.scope[CALLER] = Caller(key_owner(given), admin=admin)

    def request(self, options: dict):
        """The checked ``(body, model_id, reference, params, stream config)`` of the query and the options."""
        from api.access import Access
        from api.auth import caller_of
        from api.requests import parse
        from api.synthesis import stream_config
        from api.v1 import SpeechBody, speech_request

        query = {k: v for k, v in self.socket.query_params.items() if k in QUERY}
        if "model" not in query:
            raise ApiError(422, "missing", "model is required", name="model")
        query.setdefault("voice", query["model"])
        query.setdefault("response_format", "pcm")
        if not isinstance(options, dict):
            raise ApiError(422, "invalid", "options must be an object", name="options")
        bad = set(options) & {"model", "voice", "input", "stream_format", "response_format"}
        if bad:
            raise ApiError(422, "invalid", f"options cannot set {sorted(bad)[0]} (the query does)", name="options")
        fields = {**query, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in options.items()}}
        body = parse({**fields, "input": "."}, SpeechBody)
        stream = stream_config(self.services.stream, body)
        access = Access(caller_of(self.socket), self.services)
        model_id, ref, params = speech_request(self.services, access, body)
        return body, model_id, ref, params, stream

    def segmenter(self) -> TextSegmenter:
        raw = self.socket.query_params.get("min_chars")
        limits = self.limits
        try:
            min_chars = int(raw) if raw is not None else limits.min_chars
            return TextSegmenter(min_chars, max(limits.max_chars, min_chars))
        except ValueError:
            raise ApiError(422, "invalid", "min_chars: a whole number >= 1", name="min_chars") from None

    # --- the two halves ----------------------------------------------------------------------------------------
    async def read_text(self, first: dict, segmenter: TextSegmenter) -> None:
        """Messages to segments (the queue), until the end of the text; the end is ``None`` on the queue."""
        text_limit = self.services.settings.limits.text_chars
        msg: dict | None = first
        while True:
            if msg is None:
                try:
                    msg = await self.receive()
                except WebSocketDisconnect:
                    raise _Closed from None  # a client that leaves without its end: the synthesis stops
            text = msg.get("text")
            if text is not None and not isinstance(text, str):
                raise ApiError(422, "invalid", "text must be a string", name="text")
            if text and len(text) > text_limit:
                raise ApiError(422, "invalid", f"text: more than {text_limit} characters in one message", name="text")
            self.chars += len(text or "")
            if self.chars > self.limits.session_chars:
                raise ApiError(422, "invalid", f"more than {self.limits.session_chars} characters", name="text")
            for segment in segmenter.push(text or ""):
                await self.put(segment)
            if msg.get("flush") is True or text == "":
                for segment in segmenter.flush():
                    await self.put(segment)
            if text == "":
                break
            msg = None
        for segment in segmenter.flush():
            await self.put(segment)
        await self.queue.put(None)

    async def put(self, segment) -> None:
        self.segments += 1
        await self.queue.put(segment)

    async def speak(self, synth, ref, body, params, stream) -> dict:
        """Each segment's audio, in order, as it is decoded; the totals."""
        from api.synthesis import chunks

        encoder = StreamEncoder(body.response_format, synth.sample_rate)
        done, count, seconds = object(), 0, 0.0
        try:
            while (segment := await self.queue.get()) is not None:
                async with self.services.stream_slots:
                    pieces = await to_thread.run_sync(chunks, synth, ref, segment.text, body.language, params, stream)
                try:
                    while True:
                        async with self.services.stream_slots:
                            item = await to_thread.run_sync(next, pieces, done)
                        if item is done:
                            break
                        seconds += item.seconds
                        data = await to_thread.run_sync(encoder.encode, item.audio)
                        await self.emit(data, count, segment, item.final)
                finally:
                    pieces.close()
                count += 1
                self.spoken = count
            await self.emit(await to_thread.run_sync(encoder.finish), count - 1, None, True)
        finally:
            encoder.close()
        return {"type": "final", "segments": count, "seconds": round(seconds, 3), "chars": self.chars}

    async def emit(self, data: bytes, index: int, segment, last: bool) -> None:
        if not data:
            return
        if self.binary:
            await self.send(data)
            return
        out = {"type": "audio", "audio": base64.b64encode(data).decode(), "segment": index, "final_segment": last}
        if segment is not None:
            out.update(text=segment.text, start=segment.start, end=segment.end)
        await self.send(out)


@websocket("/v1/audio/speech/stream-input", opt={"public": True})
async def stream_input(socket: WebSocket) -> None:
    """Text in as it arrives, audio out as it is decoded (the module's docstring has the protocol)."""
    session = Session(socket)
    await socket.accept()
    pinned = None
    reader = None
    try:
        first = await session.receive()
        await session.authenticate(first)
        session.binary = socket.query_params.get("output", "json") == "binary"
        segmenter = session.segmenter()
        body, model_id, ref, params, stream = await to_thread.run_sync(session.request, first.get("options") or {})
        async with session.services.stream_slots:
            synth = await to_thread.run_sync(session.services.voices.get, model_id, True)
            pinned = model_id
        reader = asyncio.create_task(session.read_text(first, segmenter))
        speaker = asyncio.create_task(session.speak(synth, ref, body, params, stream))
        finished, _ = await asyncio.wait({reader, speaker}, return_when=asyncio.FIRST_EXCEPTION)
        if reader in finished and reader.exception() is not None:
            speaker.cancel()
            raise reader.exception()
        final = await speaker
        await session.send(final)
        with contextlib.suppress(Exception):  # a client that leaves right after the final message
            await socket.close(1000)
    except ApiError as exc:
        await session.fail(exc)
    except (_Closed, WebSocketDisconnect):
        log.info("stream-input: the client went away; synthesis stopped")
    except Exception as exc:
        await session.fail(_library_error(exc))
    finally:
        if reader is not None and not reader.done():
            reader.cancel()
        if pinned is not None:
            session.services.voices.unpin(pinned)


def _library_error(exc: Exception) -> ApiError:
    """A library error caused by the request keeps its message (as the HTTP routes answer it); anything else is
    logged and answered as an internal error."""
    from api.errors import library_status, scrub
    from mockvox.audio.io import AudioError
    from mockvox.infer.pipeline import SynthesisError
    from mockvox.infer.registry import ModelNotFound
    from mockvox.infer.voices import VoicesBusy

    if isinstance(exc, SynthesisError | ModelNotFound | VoicesBusy | AudioError):
        status, code = library_status(exc)
        return ApiError(status, code, scrub(str(exc)))
    log.exception("stream-input failed", exc_info=exc)
    return ApiError(500, "internal")
