"""The Python client (:mod:`mockvox.client`) against the app in-process (litestar.testing, no worker runs): typed
answers, both error shapes, task waits that end badly, speech from a tiny v2 voice, sync and async; the text-in
WebSocket session against a stand-in server that speaks its protocol."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading

import httpx
import numpy as np
import pytest
import soundfile as sf
from litestar.testing import TestClient

from api.app import create_app
from api.schemas import Deleted, Health, ModelOut, ModelPage, Queued, RefOut, RefPage, TaskOut
from api.settings import load_settings
from mockvox.client import AsyncMockVoxClient, MockVoxClient, MockVoxError, SpeechSession, TaskFailed

USER, ADMIN = "client-user-key", "client-admin-key"  # the tiny voice has no owner: only an admin sees it
UNKNOWN_MODEL = "m-0123456789abcdef0123456789abcdef"
UNKNOWN_FILE = "20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938"
SHORT = {"seed": 1, "max_tokens": 20}  # the tiny voice talks for a minute otherwise


def _tone(path, seconds: float = 4.0, sr: int = 16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("client") / "data"
    settings = load_settings([f"paths.data_dir={data}", "experiment=demo"], api_keys=(USER,), admin_keys=(ADMIN,))
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, timeout=120) as http:
        yield app, http


@pytest.fixture(scope="module")
def mv(served) -> MockVoxClient:
    _, http = served
    return MockVoxClient(str(http.base_url), api_key=ADMIN, http_client=http)


def _log_voice(app, tmp) -> str:
    """A tiny v2 voice logged and registered in the app's registry (as training would), with its own reference."""
    from mockvox.audio.io import load_audio
    from mockvox.voice import Reference
    from tests.conftest import SAMPLES
    from tests.infer import write_v2

    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    ref_path = tmp / "ref.wav"
    sf.write(ref_path, audio[sr // 2 : sr // 2 + 5 * sr], sr, subtype="PCM_16")
    prompt = (SAMPLES / "voice_en.txt").read_text().splitlines()[0]
    folder = write_v2(tmp / "voicefolder", reference=Reference(ref_path, prompt, "en"))
    registry = app.state.services.registry
    with registry.run("dev") as run_id:
        model_id = registry.log_voice(run_id, folder, {"version": "v2"}, {}).model_id
    registry.register(f"models:/{model_id}", "clientvoice")
    return model_id


@pytest.fixture(scope="module")
def voice(served, tmp_path_factory) -> str:
    return _log_voice(served[0], tmp_path_factory.mktemp("voice"))


def test_references_roundtrip_with_typed_answers(mv, tmp_path) -> None:
    ref = mv.upload_ref(_tone(tmp_path / "ref.wav"), text="A tone.", language="en")
    assert isinstance(ref, RefOut) and ref.text == "A tone." and ref.language == "en" and ref.filename == "ref.wav"
    assert 3.9 < ref.seconds < 4.1
    page = mv.refs(limit=500)
    assert isinstance(page, RefPage) and ref.file_id in [r.file_id for r in page.items] and page.limit == 500
    assert mv.ref(ref.file_id) == ref
    deleted = mv.delete_ref(ref.file_id)
    assert isinstance(deleted, Deleted) and deleted.id == ref.file_id
    with pytest.raises(MockVoxError) as err:
        mv.ref(ref.file_id)
    assert err.value.status == 404 and err.value.code == "ref_not_found"


def test_errors_of_both_shapes(mv, served) -> None:
    with pytest.raises(MockVoxError) as err:
        mv.model(UNKNOWN_MODEL)
    assert err.value.status == 404 and err.value.code == "model_not_found" and err.value.body["status"] == 404
    assert err.value.message == err.value.body["detail"]
    with pytest.raises(MockVoxError) as err:  # /v1: {"error": {"message", "type", "param", "code"}}
        mv.speak(UNKNOWN_MODEL, "Hello.", language="en")
    assert err.value.status == 404 and err.value.code == "model_not_found" and err.value.param == "model"
    assert err.value.message == err.value.body["error"]["message"]
    with pytest.raises(MockVoxError) as err:
        mv.train(UNKNOWN_FILE, epochs_sovits=0)
    assert err.value.status == 422 and err.value.code == "invalid" and "epochs_sovits" in err.value.message
    _, http = served
    with pytest.raises(MockVoxError) as err:
        MockVoxClient(str(http.base_url), http_client=http).refs()  # no key
    assert err.value.status == 401 and err.value.code == "unauthorized"


def test_health_without_a_key(served) -> None:
    _, http = served
    health = MockVoxClient(str(http.base_url), http_client=http).health()
    assert isinstance(health, Health) and health.status in ("ok", "degraded", "starting") and health.records


def test_wait_raises_for_a_cancelled_and_a_failed_task(mv, served, tmp_path) -> None:
    app, _ = served
    queued = mv.upload(_tone(tmp_path / "rec.wav", 5.0), language="en")
    assert isinstance(queued, Queued) and queued.file_id
    seen: list[TaskOut] = []
    with pytest.raises(TimeoutError):  # no worker here: it stays queued
        mv.wait(queued.task_id, timeout=0.3, poll=0.05, on_progress=seen.append)
    assert [t.status for t in seen] == ["PENDING"]  # once: nothing changed after
    assert mv.cancel(queued.task_id).status == "REVOKED"
    with pytest.raises(TaskFailed) as failed:
        mv.wait(queued)
    assert failed.value.task.status == "REVOKED" and failed.value.task.task_id == queued.task_id

    queued = mv.upload(_tone(tmp_path / "rec.wav", 5.0), language="en")
    app.state.services.celery.backend.mark_as_failure(queued.task_id, RuntimeError("no speech at all"))
    app.state.services.records.finish(queued.task_id)
    with pytest.raises(TaskFailed) as failed:
        mv.wait(queued.task_id, timeout=10)
    assert failed.value.task.status == "FAILURE" and "no speech at all" in failed.value.task.error
    assert "no speech at all" in str(failed.value)


def test_models_and_speech_from_a_tiny_voice(mv, voice, tmp_path) -> None:
    info = mv.model(voice)
    assert isinstance(info, ModelOut) and info.model_id == voice and info.version == "v2"
    assert mv.model("models:/clientvoice/1").model_id == voice
    page = mv.models(limit=10)
    assert isinstance(page, ModelPage) and voice in [m.model_id for m in page.items]

    wav = mv.speak(voice, "Hello there.", language="en", response_format="wav", **SHORT)
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    assert sr == 32000 and len(audio) > 0 and np.abs(audio).max() > 1e-3
    path = mv.speak(voice, "Hello there.", language="en", file=tmp_path / "out.wav", **SHORT)
    assert path == tmp_path / "out.wav" and sf.info(path).samplerate == 32000

    chunks = list(mv.stream(voice, "Hello there.", language="en", **SHORT))
    pcm = b"".join(chunks)
    assert chunks and len(pcm) > 0 and len(pcm) % 2 == 0
    assert pcm == mv.speak(voice, "Hello there.", language="en", response_format="pcm", **SHORT)  # one seed
    assert len(pcm) // 2 == len(audio)  # the WAV's samples, headerless

    streamed = b"".join(mv.stream_inference(voice, "Hello there.", language="en", **SHORT))
    assert streamed[:4] == b"RIFF" and len(streamed) > 44


class _Bridge(httpx.AsyncBaseTransport):
    """The async client's requests sent by the sync TestClient (in a thread): the app keeps its one event loop."""

    def __init__(self, client: TestClient):
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        sent = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        resp = await asyncio.to_thread(self.client.send, sent)
        framing = ("content-length", "transfer-encoding")  # the body is whole here
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in framing]
        return httpx.Response(resp.status_code, headers=headers, content=resp.content)


def test_the_async_client(served, voice, tmp_path) -> None:
    _, http = served
    ref_path = _tone(tmp_path / "ref.wav")

    async def main():
        async with httpx.AsyncClient(transport=_Bridge(http)) as bridge:
            async with AsyncMockVoxClient(str(http.base_url), api_key=ADMIN, http_client=bridge) as mv:
                ref = await mv.upload_ref(ref_path, text="A tone.", language="en")
                assert (await mv.ref(ref.file_id)) == ref
                assert (await mv.delete_ref(ref.file_id)).id == ref.file_id
                with pytest.raises(MockVoxError) as err:
                    await mv.model(UNKNOWN_MODEL)
                assert err.value.status == 404 and err.value.code == "model_not_found"
                assert isinstance(await mv.health(), Health)
                assert (await mv.model(voice)).model_id == voice
                pcm = b"".join([c async for c in mv.stream(voice, "Hello there.", language="en", **SHORT)])
                assert len(pcm) > 0 and len(pcm) % 2 == 0

    asyncio.run(main())


# --- the text-in WebSocket, against a stand-in that speaks its protocol --------------------------------------------
@pytest.fixture()
def ws_server():
    """A WebSocket server on loopback: it records the request and the messages, answers each flush and the end
    with a JSON audio message, the end also with a binary frame, then ``final`` (``model=bad``: an error message
    after the first message, as the service checks the request; ``model=locked``: a 401 before the upgrade)."""
    from websockets.sync.server import serve

    got: dict = {"messages": []}

    def refuse(connection, request):
        got["path"], got["auth"] = request.path, request.headers.get("Authorization")
        if "model=locked" in request.path:
            body = {"error": {"message": "a valid API key is required", "type": "authentication_error",
                              "param": None, "code": "unauthorized"}}  # fmt: skip
            return connection.respond(401, json.dumps(body))
        return None

    def handler(ws):
        if "model=bad" in got["path"]:
            got["messages"].append(json.loads(ws.recv()))
            ws.send(json.dumps({"type": "error", "error": {"message": "voice x: no such voice",
                                                          "type": "not_found_error", "param": "voice",
                                                          "code": "ref_not_found"}}))  # fmt: skip
            return
        segment = 0
        for message in ws:
            event = json.loads(message)
            got["messages"].append(event)
            if event.get("flush") or event.get("text") == "":
                audio = base64.b64encode(b"\x01\x00" * (segment + 1)).decode()
                ws.send(json.dumps({"type": "audio", "audio": audio, "segment": segment, "text": "t",
                                    "start": 0.0, "end": 0.1}))  # fmt: skip
                segment += 1
            if event.get("text") == "":
                ws.send(b"\x02\x00\x03\x00")
                ws.send(json.dumps({"type": "final", "segments": segment}))
                return

    server = serve(handler, "127.0.0.1", 0, process_request=refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.socket.getsockname()[:2]
    try:
        yield f"http://{host}:{port}", got
    finally:
        server.shutdown()
        thread.join(5)


def test_speech_session_speaks_the_protocol(ws_server) -> None:
    url, got = ws_server
    with MockVoxClient(url, api_key="k") as mv:
        with mv.speech_session(UNKNOWN_MODEL, language="en", min_chars=5, seed=3, top_k=None) as session:
            assert isinstance(session, SpeechSession)
            session.send("Hello ")
            session.send("")  # not sent: it would end the session
            session.flush()
            session.send("there.")
            session.end()
            audio = b"".join(session)
    assert audio == b"\x01\x00" + b"\x01\x00" * 2 + b"\x02\x00\x03\x00"
    assert got["messages"] == [{"options": {"seed": 3}}, {"text": "Hello "}, {"flush": True}, {"text": "there."},
                               {"text": ""}]  # fmt: skip
    assert got["auth"] == "Bearer k" and got["path"].startswith("/v1/audio/speech/stream-input?")
    query = dict(p.split("=", 1) for p in got["path"].split("?", 1)[1].split("&"))
    assert query == {"model": UNKNOWN_MODEL, "voice": UNKNOWN_MODEL, "response_format": "pcm", "language": "en",
                     "output": "json", "min_chars": "5"}  # fmt: skip
    assert [e["segment"] for e in session.events] == [0, 1] and session.final == {"type": "final", "segments": 2}


def test_speech_session_errors(ws_server) -> None:
    url, got = ws_server
    with MockVoxClient(url) as mv:
        with pytest.raises(MockVoxError) as err:
            mv.speech_session("locked")
        assert err.value.status == 401 and err.value.code == "unauthorized"
        with pytest.raises(MockVoxError) as err, mv.speech_session("bad", voice="x", seed=1) as session:
            list(session)
        assert err.value.status == 404 and err.value.code == "ref_not_found" and err.value.param == "voice"
        assert got["messages"] == [{"options": {"seed": 1}}]


def test_async_speech_session(ws_server) -> None:
    url, got = ws_server

    async def main() -> bytes:
        async with AsyncMockVoxClient(url, api_key="k") as mv:
            async with mv.speech_session(UNKNOWN_MODEL, voice="v1", output="binary", speed=1.1) as session:
                await session.send("Hello.")
                await session.end()
                return b"".join([chunk async for chunk in session])

    assert asyncio.run(main()) == b"\x01\x00" + b"\x02\x00\x03\x00"
    assert got["messages"] == [{"options": {"speed": 1.1}}, {"text": "Hello."}, {"text": ""}]
    assert "voice=v1" in got["path"] and "output=binary" in got["path"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The app on a loopback port (uvicorn in a thread: a WebSocket needs a real server), with a tiny voice."""
    import socket

    import uvicorn

    tmp = tmp_path_factory.mktemp("live")
    settings = load_settings([f"paths.data_dir={tmp / 'data'}", "experiment=demo"], api_keys=(USER,),
                             admin_keys=(ADMIN,))  # fmt: skip
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.1)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", _log_voice(app, tmp)
    finally:
        server.should_exit = True
        thread.join(30)


def test_speech_session_end_to_end(live) -> None:
    url, model_id = live
    with MockVoxClient(url, api_key=ADMIN) as mv:
        with mv.speech_session(model_id, language="en", **SHORT) as session:
            session.send("Hello there. ")
            session.send("How are you?")
            session.end()
            pcm = b"".join(session)
        assert len(pcm) > 0 and len(pcm) % 2 == 0 and session.final["type"] == "final"
        assert session.final["segments"] >= 1 and session.final["chars"] == len("Hello there. How are you?")
        assert all(e["type"] == "audio" for e in session.events)
        with mv.speech_session(model_id, language="en", output="binary", response_format="wav", **SHORT) as session:
            session.send("Hello there.")
            session.end()
            wav = b"".join(session)
        assert wav[:4] == b"RIFF" and session.events == [] and session.final["segments"] == 1
        with pytest.raises(MockVoxError) as err, mv.speech_session(UNKNOWN_MODEL, **SHORT) as session:
            list(session)
        assert err.value.status == 404 and err.value.code == "model_not_found" and err.value.param == "model"
    with pytest.raises(MockVoxError) as err, MockVoxClient(url).speech_session(model_id, **SHORT) as session:
        list(session)  # no key: the service says so in its first answer
    assert err.value.status == 401 and err.value.code == "unauthorized"

    async def main() -> bytes:
        async with AsyncMockVoxClient(url, api_key=ADMIN) as amv:
            async with amv.speech_session(model_id, language="en", **SHORT) as asession:
                await asession.send("Hello there.")
                await asession.end()
                return b"".join([chunk async for chunk in asession])

    with MockVoxClient(url, api_key=ADMIN) as mv:  # the same speech as /v1/audio/speech gives (one seed)
        assert asyncio.run(main()) == mv.speak(model_id, "Hello there.", language="en", response_format="pcm", **SHORT)
