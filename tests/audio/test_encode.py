"""The stream encoder: every format decodes back (PyAV) at its rate and length, and bytes leave before the end."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from mockvox.audio.encode import FORMATS, StreamEncoder, encode_all, media_type

SR = 32000


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]), frames[0].sample_rate


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pcm"])
def test_chunks_make_one_file_of_the_whole_audio(fmt) -> None:
    audio = _tone(2.0)
    enc = StreamEncoder(fmt, SR)
    parts = [enc.encode(audio[i : i + 4000]) for i in range(0, len(audio), 4000)]
    tail = enc.finish()
    assert sum(len(p) for p in parts[:3]) > 0  # a stream sends bytes long before its end
    decoded, rate = _decode(b"".join(parts) + tail)
    assert rate == (48000 if fmt == "opus" else SR)
    assert abs(len(decoded) / rate - 2.0) < 0.1, (fmt, len(decoded) / rate)
    assert np.sqrt(np.mean(decoded.astype(np.float64) ** 2)) > 0.1  # the tone, not silence


def test_pcm_is_headerless_int16_with_its_rate_in_the_media_type() -> None:
    audio = _tone(0.5)
    data = encode_all(audio, SR, "pcm")
    assert len(data) == 2 * len(audio) and media_type("pcm", SR) == "audio/pcm;rate=32000"
    assert np.abs(np.frombuffer(data, "<i2") / 32767 - audio).max() < 1e-3


def test_whole_wav_knows_its_size_and_a_stream_does_not() -> None:
    audio = _tone(0.25)
    whole = encode_all(audio, SR, "wav")
    assert int.from_bytes(whole[40:44], "little") == 2 * len(audio)
    streamed = StreamEncoder("wav", SR).encode(audio)
    assert streamed[40:44] == b"\xff\xff\xff\xff" and streamed[44:] == whole[44:]


def test_no_audio_is_still_a_valid_file_and_unknown_formats_are_refused() -> None:
    assert len(StreamEncoder("wav", SR).finish()) == 44
    with pytest.raises(ValueError, match="unknown audio format"):
        StreamEncoder("ogg-vorbis", SR)
