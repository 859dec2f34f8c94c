"""The OpenAI-compatible routes and the text-in WebSocket on a live server, driven by the real clients users have:
the ``openai`` package (``base_url``) and ``websockets``. Each output is decoded back (PyAV) and checked."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import socket
import threading
import time

import av
import numpy as np
import openai
import psutil
import pytest
from websockets.sync.client import connect

from tests.api.conftest import wait_task

SENTENCES = ["Good morning to you, my friend.", "The river is calm and the weather is lovely.",
             "We will walk along the water until the sun goes down."]  # fmt: skip
EXTRA = {"seed": 5, "language": "en", "max_tokens": 60}


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-without-keys", max_retries=0)


def _decoded(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768, 32000
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32), frames[0].sample_rate


def _speech(oai, walkthrough, text: str, fmt: str, **extra) -> bytes:
    model = walkthrough["model_id"]
    return oai.audio.speech.create(model=model, voice=model, input=text, response_format=fmt,
                                   extra_body={**EXTRA, **extra}).content  # fmt: skip


def test_openai_client_speaks_in_all_six_formats(oai, walkthrough) -> None:
    lengths = {}
    for fmt in ("mp3", "opus", "aac", "flac", "wav", "pcm"):
        audio, rate = _decoded(_speech(oai, walkthrough, SENTENCES[0], fmt), fmt)
        assert rate == (48000 if fmt == "opus" else 32000), fmt
        lengths[fmt] = len(audio) / rate
        assert lengths[fmt] > 0.5 and np.sqrt(np.mean(audio**2)) > 0.005, (fmt, lengths[fmt])
    assert max(lengths.values()) - min(lengths.values()) < 0.15, lengths  # codec padding only: the same speech


def test_streaming_response_and_sse_carry_the_same_audio(oai, walkthrough) -> None:
    model = walkthrough["model_id"]
    whole = _speech(oai, walkthrough, " ".join(SENTENCES[:2]), "pcm")
    with oai.audio.speech.with_streaming_response.create(model=model, voice=model, input=" ".join(SENTENCES[:2]),
                                                         response_format="pcm", extra_body=EXTRA) as r:  # fmt: skip
        assert r.headers["content-type"] == "audio/pcm;rate=32000"
        pieces = list(r.iter_bytes())
    assert b"".join(pieces) == whole and len(pieces) > 1
    with oai.audio.speech.with_streaming_response.create(model=model, voice=model, input=" ".join(SENTENCES[:2]),
                                                         response_format="pcm", stream_format="sse",
                                                         extra_body=EXTRA) as r:  # fmt: skip
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1) and len(events) > 2
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["output_tokens"] > 0
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == whole


def test_voices_are_created_used_listed_and_deleted(oai, walkthrough, ref_clip) -> None:
    model = walkthrough["model_id"]
    with open(ref_clip, "rb") as f:
        voice = oai.audio.voices.create(name="narrator", audio_sample=f, consent="cons_local",
                                        extra_body={"transcript": "The quick brown fox jumps over the lazy dog.",
                                                    "language": "en"})  # fmt: skip
    assert voice.id and voice.name == "narrator"
    for named in ({"id": voice.id}, "narrator", voice.id):
        data = oai.audio.speech.create(model=model, voice=named, input=SENTENCES[0], response_format="wav",
                                       extra_body=EXTRA).content  # fmt: skip
        audio, rate = _decoded(data, "wav")
        assert rate == 32000 and len(audio) > rate // 2
    with open(ref_clip, "rb") as f:  # no transcript: Whisper writes it and finds the language
        heard = oai.audio.voices.create(name="heard", audio_sample=f, consent="cons_local")
    listed = oai.get("/audio/voices", cast_to=object)
    found = {v["id"]: v for v in listed["data"]}
    assert found[heard.id]["language"] == "en" and len(found[heard.id]["transcript"]) > 5, found[heard.id]
    assert voice.id in found
    for vid in (voice.id, heard.id):
        assert oai.delete(f"/audio/voices/{vid}", cast_to=object)["deleted"] is True
    with pytest.raises(openai.NotFoundError) as err:
        oai.audio.speech.create(model=model, voice={"id": voice.id}, input="hi", extra_body=EXTRA)
    assert err.value.body["code"] == "ref_not_found" and err.value.body["param"] == "voice"


def test_errors_come_in_openais_shape(oai, walkthrough) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.audio.speech.create(model="no-such-voice", voice="x", input="hi")
    assert err.value.body["type"] == "not_found_error" and err.value.body["param"] == "model"
    with pytest.raises(openai.UnprocessableEntityError) as err:
        oai.audio.speech.create(model=walkthrough["model_id"], voice="x", input="hi", response_format="ogg")
    assert err.value.body["param"] == "response_format" and "response_format" in err.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        oai.audio.speech.create(model=walkthrough["model_id"], voice="x", input="x" * 4097)
    models = oai.models.list()
    assert walkthrough["model_id"] in [m.id for m in models.data]


def _ws_url(server, walkthrough, **query) -> str:
    q = {"model": walkthrough["model_id"], "language": "en", "response_format": "pcm", **query}
    return f"ws://127.0.0.1:{server.port}/v1/audio/speech/stream-input?" + "&".join(f"{k}={v}" for k, v in q.items())


def test_websocket_speaks_text_as_it_arrives(server, oai, walkthrough) -> None:
    paragraph = " ".join(SENTENCES)
    sent_all = threading.Event()
    rng = random.Random(1)
    with connect(_ws_url(server, walkthrough, min_chars=10)) as ws:
        ws.send(json.dumps({"options": {"seed": 5, "max_tokens": 60}}))

        def feed():
            for word in paragraph.split(" "):
                ws.send(json.dumps({"text": word + " "}))
                time.sleep(rng.uniform(0.05, 0.25))
            sent_all.set()
            ws.send(json.dumps({"text": ""}))

        threading.Thread(target=feed, daemon=True).start()
        messages, early = [], None
        while (msg := json.loads(ws.recv(timeout=300)))["type"] == "audio":
            early = early if early is not None else not sent_all.is_set()
            messages.append(msg)
    assert msg["type"] == "final" and msg["segments"] == 3, msg
    assert early, "no audio arrived before the paragraph ended"
    texts = list(dict.fromkeys(m["text"] for m in messages))
    assert texts == SENTENCES and [paragraph[m["start"] : m["end"]] for m in messages] == [m["text"] for m in messages]
    first = b"".join(base64.b64decode(m["audio"]) for m in messages if m["segment"] == 0)
    assert first == _speech(oai, walkthrough, SENTENCES[0], "pcm")  # the same seed: the same audio


def _log_after(server, mark: int, pattern: str, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := re.search(pattern, server.output()[mark:]):
            return found
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not logged: {server.output()[mark:][-2000:]}")


def test_websocket_disconnect_stops_the_synthesis(server, walkthrough) -> None:
    mark = len(server.output())
    with connect(_ws_url(server, walkthrough)) as ws:
        ws.send(json.dumps({"options": {"max_tokens": 60}, "text": " ".join(SENTENCES * 5)}))
        assert json.loads(ws.recv(timeout=300))["type"] == "audio"
    _log_after(server, mark, r"stream-input: the client went away; synthesis stopped")


def test_a_client_that_does_not_read_is_dropped_without_growing_the_server(server, walkthrough) -> None:
    """``websocket.send_timeout_s=3`` on the test server: a reader that stops is dropped, its synthesis stopped
    long before the text is spoken, and the server's memory does not follow the audio it could have made."""
    proc = psutil.Process(server.proc.pid)
    before = proc.memory_info().rss
    mark = len(server.output())
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sentences = [f"This is sentence number {i} of a paragraph that nobody listens to." for i in range(60)]
    with connect(_ws_url(server, walkthrough, output="binary"), sock=sock, max_queue=1) as ws:
        # speed 0.25: four times the audio per token, so that the socket's buffers fill after a few segments
        ws.send(json.dumps({"options": {"max_tokens": 60, "speed": 0.25}}))
        for sentence in sentences:  # one message each (a message holds at most limits.text_chars)
            ws.send(json.dumps({"text": sentence + " "}))
        ws.send(json.dumps({"text": ""}))
        found = _log_after(server, mark, r"dropped after (\d+) segment\(s\) of (\d+)", timeout=240)
    assert int(found.group(1)) < 60, found.group(0)
    assert proc.memory_info().rss - before < 200 * 2**20


def test_registered_names_and_the_other_routes_formats(server, oai, walkthrough) -> None:
    """A model named by its registry name; /output?format= and /streamInference?media_type= use the same encoders."""
    import httpx

    card = next(m for m in oai.models.list().data if m.id == walkthrough["model_id"])
    name = next(n for n in card.names if "/" in n.removeprefix("models:/")).removeprefix("models:/").split("/")[0]
    by_name = oai.audio.speech.create(model=name, voice=name, input=SENTENCES[0], response_format="pcm",
                                      extra_body=EXTRA).content  # fmt: skip
    assert by_name == _speech(oai, walkthrough, SENTENCES[0], "pcm")
    with httpx.Client(base_url=server.url, timeout=300) as c:
        queued = c.post("/inference", json={"model_id": walkthrough["model_id"], "target_text": SENTENCES[0],
                                            "target_language": "en", "seed": 5, "max_tokens": 60})  # fmt: skip
        task = queued.json()["task_id"]
        assert wait_task(c, task)["status"] == "SUCCESS"
        wav = c.get(f"/output/{task}")
        assert wav.status_code == 200
        for fmt in ("mp3", "flac", "opus"):
            r = c.get(f"/output/{task}", params={"format": fmt})
            assert r.status_code == 200 and fmt in r.headers["content-disposition"].replace("ogg", "opus"), r.text
            audio, rate = _decoded(r.content, fmt)
            assert abs(len(audio) / rate - (len(wav.content) - 44) / 2 / 32000) < 0.1
        assert c.get(f"/output/{task}", params={"format": "exe"}).status_code == 422
        params = {"model_id": walkthrough["model_id"], "target_text": SENTENCES[0], "target_language": "en", "seed": 5,
                  "max_tokens": 60, "media_type": "aac"}  # fmt: skip
        r = c.get("/streamInference", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "audio/aac"
        audio, rate = _decoded(r.content, "aac")
        assert rate == 32000 and len(audio) > rate // 2


def test_an_idle_socket_is_closed(server, walkthrough) -> None:
    """``websocket.idle_s=5`` on the test server."""
    began = time.monotonic()
    with connect(_ws_url(server, walkthrough)) as ws:
        answer = json.loads(ws.recv(timeout=30))
        assert answer["type"] == "error" and answer["error"]["param"] == "idle", answer
    assert 4 < time.monotonic() - began < 20
