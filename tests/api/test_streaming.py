"""/streamInference in every streaming mode on a live server: one WAV header of unknown length, then PCM; the chunked
modes carry the audio of the whole decode (same length, same sound away from the joins); bad modes are a 422."""

from __future__ import annotations

import struct

import httpx
import numpy as np

from mockvox.eval.streaming import join_quality

TEXT = "The weather is lovely today, and the river is calm."


def _get(url: str, params: dict) -> tuple[int, np.ndarray, int]:
    with httpx.Client(base_url=url, timeout=300) as c:
        r = c.get("/streamInference", params=params)
    assert r.status_code == 200, r.text
    head = r.content[:44]
    assert head[:4] == b"RIFF" and struct.unpack("<I", head[40:44])[0] == 0xFFFFFFFF  # streamed: length unknown
    rate = struct.unpack("<I", head[24:28])[0]
    return rate, np.frombuffer(r.content[44:], dtype="<i2").astype(np.float32) / 32768, len(r.content)


def test_every_streaming_mode_gives_the_audio_of_the_whole_decode(server, walkthrough) -> None:
    base = {"model_id": walkthrough["model_id"], "target_text": TEXT, "target_language": "en", "seed": 9,
            "max_tokens": 60}  # fmt: skip
    rate, whole, _ = _get(server.url, {**base, "streaming_mode": "whole"})
    assert rate == 32000 and len(whole) > 32000
    assert np.array_equal(_get(server.url, {**base, "streaming_mode": "fragment"})[1], whole)
    for mode in ("token", "fixed", "2", "3", None):  # None: the server's default (token)
        _, audio, _ = _get(server.url, {**base, **({"streaming_mode": mode} if mode else {})})
        assert len(audio) == len(whole), mode
        q = join_quality(audio, whole, rate, [])
        assert q.mel_l1 < 0.05, (mode, q)  # log-mel L1 over the clip (joins included): near-equal
    _, short, _ = _get(server.url, {**base, "streaming_mode": "token", "first_chunk_length": 4, "min_chunk_length": 8})
    assert len(short) == len(whole)


def test_bad_stream_settings_are_a_422_naming_them(client, walkthrough) -> None:
    base = {"model_id": walkthrough["model_id"], "target_text": TEXT, "target_language": "en"}
    bad = [
        ({"streaming_mode": "sometimes"}, "streaming_mode"),
        ({"streaming_mode": "4"}, "streaming_mode"),
        ({"first_chunk_length": 0}, "first_chunk_length"),
        ({"min_chunk_length": 100000}, "min_chunk_length"),
    ]
    for extra, name in bad:
        r = client.get("/streamInference", params={**base, **extra})
        assert r.status_code == 422 and name in r.json()["detail"], r.text
