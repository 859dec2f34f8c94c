"""Audio out in the formats clients ask for, encoded as it is made: each chunk of float audio becomes the bytes
that can be sent at once (a stream never waits for the end to start).

``wav`` (one header with unknown sizes, then 16-bit PCM) and ``pcm`` (16-bit little-endian, no header) are
written here; ``mp3``, ``opus`` (in Ogg), ``aac`` (ADTS) and ``flac`` go through PyAV, whose wheels bundle
FFmpeg's encoders (LAME, libopus, FFmpeg's AAC and FLAC). PyAV cuts the audio into its codec's frames and
resamples where the codec needs it (Opus runs at 48 kHz); what a frame does not fill waits for the next chunk or
for :meth:`StreamEncoder.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from mockvox.audio.io import pcm16, wav_header


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    container: str | None = None  # FFmpeg muxer (None: written here)
    codec: str | None = None  # FFmpeg encoder
    rate: int | None = None  # the codec's own rate (None: the audio's)
    bit_rate: int | None = None
    options: tuple[tuple[str, str], ...] = ()  # the muxer's


FORMATS: dict[str, Format] = {
    "mp3": Format("mp3", "audio/mpeg", "mp3", "libmp3lame", bit_rate=128_000),
    "opus": Format(
        "opus",
        "audio/ogg; codecs=opus",
        "ogg",
        "libopus",
        rate=48_000,
        bit_rate=64_000,
        options=(("page_duration", "60000"),),
    ),  # Ogg pages of 60 ms, not 1 s: a stream's first bytes early,
    "aac": Format("aac", "audio/aac", "adts", "aac", bit_rate=128_000),
    "flac": Format("flac", "audio/flac", "flac", "flac"),
    "wav": Format("wav", "audio/wav"),
    "pcm": Format("pcm", "audio/pcm"),
}
EXTENSIONS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}


class EncoderError(RuntimeError):
    """A format this installation cannot encode (PyAV missing, or its FFmpeg built without the encoder)."""


def media_type(fmt: str, sample_rate: int) -> str:
    """The Content-Type of ``fmt``; headerless PCM names its rate (``audio/pcm;rate=32000``)."""
    if fmt == "pcm":
        return f"audio/pcm;rate={sample_rate}"
    return FORMATS[fmt].media_type


class _Sink:
    """A write-only file for FFmpeg's muxer: no ``seek``, so muxers that would go back (FLAC's STREAMINFO, the
    MP3 Xing header) write a streamable file instead; what was written is taken after each encode."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class StreamEncoder:
    """Float mono audio in ``[-1, 1]`` at ``sample_rate`` in, the bytes of ``fmt`` out, chunk by chunk.

    ``encode(chunk)`` returns what is ready to send (possibly ``b""``); ``finish()`` flushes the encoder and the
    container. The concatenation of everything returned is one valid file (or headerless PCM).
    """

    def __init__(self, fmt: str, sample_rate: int):
        if fmt not in FORMATS:
            raise ValueError(f"unknown audio format {fmt!r}; one of {', '.join(FORMATS)}")
        self.format, self.sample_rate = FORMATS[fmt], int(sample_rate)
        self.media_type = media_type(fmt, self.sample_rate)
        self._started = self._finished = False
        self._pts = 0
        self._container = self._stream = self._sink = None
        if self.format.container is not None:
            self._open()

    def _open(self) -> None:
        try:
            import av
        except ImportError as exc:  # pragma: no cover (a core dependency)
            raise EncoderError(f"{self.format.name} needs PyAV (pip install av): {exc}") from None
        self._sink = _Sink()
        try:
            self._container = av.open(
                self._sink, mode="w", format=self.format.container, options=dict(self.format.options)
            )
            stream = self._container.add_stream(self.format.codec, rate=self.format.rate or self.sample_rate)
        except (av.error.FFmpegError, ValueError) as exc:
            raise EncoderError(f"this FFmpeg cannot write {self.format.name}: {exc}") from None
        stream.layout = "mono"
        if self.format.bit_rate:
            stream.bit_rate = self.format.bit_rate
        self._stream = stream

    def encode(self, audio: np.ndarray) -> bytes:
        if self._finished:
            raise RuntimeError("the encoder is finished")
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        head = b""
        if not self._started:
            self._started = True
            head = wav_header(self.sample_rate) if self.format.name == "wav" else b""
        if self._container is None:
            return head + pcm16(audio)
        if audio.size == 0:
            return head
        return head + self._push(audio)

    def _push(self, audio: np.ndarray | None) -> bytes:
        import av

        if audio is None:
            packets = self._stream.encode(None)
        else:
            frame = av.AudioFrame.from_ndarray(np.clip(audio, -1.0, 1.0)[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts = self.sample_rate, self._pts
            frame.time_base = Fraction(1, self.sample_rate)
            self._pts += audio.size
            packets = self._stream.encode(frame)
        self._container.mux(packets)
        return self._sink.take()

    def finish(self) -> bytes:
        """The rest: what the codec still holds and the container's trailer; the encoder is closed after."""
        if self._finished:
            return b""
        self._finished = True
        head = b""
        if not self._started:  # no audio at all: still a valid (empty) file
            self._started = True
            head = wav_header(self.sample_rate, 0) if self.format.name == "wav" else b""
        if self._container is None:
            return head
        tail = self._push(None)
        self._container.close()
        return head + tail + self._sink.take()

    def close(self) -> None:
        """Release the encoder without its trailer (a stream that ended early)."""
        if self._container is not None and not self._finished:
            self._finished = True
            try:
                self._container.close()
            except Exception:  # an encoder that never got audio may refuse to write its trailer
                pass


def encode_all(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """One whole file of ``fmt``."""
    enc = StreamEncoder(fmt, sample_rate)
    if fmt == "wav":  # a whole file knows its size
        return wav_header(sample_rate, int(np.asarray(audio).size) * 2) + pcm16(audio)
    return enc.encode(audio) + enc.finish()
