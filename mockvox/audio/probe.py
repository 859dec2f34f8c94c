"""Header checks and bounded decoding that keep a hostile file (a decoding bomb) from exhausting memory.

libsndfile 1.2.2 clamps a WAV/AIFF/AU/W64/RF64 data size that claims more than the file holds, but trusts the
sample count of a FLAC STREAMINFO block (up to 2**36 - 1) and of an MP3 Xing header, reports a FLAC count of 0
(unknown) as 2**63 - 1, and fails at the end of a FLAC holding less than its header declares. So uncompressed
audio must fit in the file, compressed audio may not decode to more than ``max_ratio`` times the file size, and
the decoder stops at ``max_seconds`` whatever the header said.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

# bytes per sample of the uncompressed subtypes libsndfile reports
PCM_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
PCM_BYTES |= {"ULAW": 1, "ALAW": 1}
COMPRESSED_FORMATS = ("FLAC", "OGG", "MP3")  # their subtype (FLAC: PCM_16) says nothing of the stored size
UNKNOWN_FRAMES = 2**63 - 1  # SF_COUNT_MAX: what libsndfile reports when the header leaves the length out


class AudioError(ValueError):
    """A recording that cannot be used; the message names the problem."""


class UnreadableAudio(AudioError):
    """libsndfile cannot parse the header (another decoder, such as ffmpeg, may still read the file)."""


@dataclass(frozen=True)
class AudioLimits:
    """What a recording may declare and decode to."""

    max_channels: int = 2
    min_rate: int = 8000
    max_rate: int = 192000
    min_seconds: float = 0.0
    max_seconds: float = 3600.0
    max_ratio: float = 256.0  # decoded 16-bit PCM bytes per file byte, for compressed formats
    block_seconds: float = 10.0  # decoded per read


@dataclass(frozen=True)
class AudioProbe:
    """What a file's header declares."""

    format: str
    subtype: str
    channels: int
    sample_rate: int
    frames: int
    seconds: float
    size: int  # file bytes


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool):
    """Silence a C library writing to file descriptor 2 (libmpg123 prints resync notes on bad MP3 data)."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def native_detail(exc: BaseException, path: Path) -> str:
    """A decoder's error message without the file's directory."""
    text = exc.error_string if isinstance(exc, sf.LibsndfileError) else str(exc)
    for spelling in {str(path.resolve()), str(path)}:
        text = text.replace(spelling, path.name)
    return text.strip() or type(exc).__name__


def probe_audio(path: str | os.PathLike, limits: AudioLimits | None = None) -> AudioProbe:
    """Read only the header of ``path`` and check it against ``limits`` (default :class:`AudioLimits`).

    Raises:
        UnreadableAudio: libsndfile cannot parse the header.
        AudioError: the file is missing or empty, or its header declares what ``limits`` do not accept.
    """
    path, limits = Path(path), limits or AudioLimits()
    if not path.is_file():
        raise AudioError(f"{path.name}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path.name}: the file is empty (0 bytes)")
    try:
        with quiet_native_stderr(path.suffix.lower() == ".mp3"):
            info = sf.info(str(path))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        raise UnreadableAudio(f"{path.name}: undecodable audio header ({native_detail(exc, path)})") from None
    if info.frames >= UNKNOWN_FRAMES:  # libsndfile cannot decode to the end of such a stream (its seek fails)
        raise UnreadableAudio(f"{path.name}: undecodable audio header (it does not declare the length)")
    probe = AudioProbe(
        format=info.format,
        subtype=info.subtype,
        channels=info.channels,
        sample_rate=info.samplerate,
        frames=info.frames,
        seconds=info.frames / info.samplerate if info.samplerate > 0 else math.inf,
        size=size,
    )
    _check_layout(path.name, probe, limits)
    _check_size(path.name, probe, limits)
    return probe


def _check_layout(name: str, probe: AudioProbe, limits: AudioLimits) -> None:
    """Channels, sample rate and declared duration."""
    if not 1 <= probe.channels <= limits.max_channels:
        raise AudioError(f"{name}: {probe.channels} channels; accepted: 1 to {limits.max_channels}")
    if not limits.min_rate <= probe.sample_rate <= limits.max_rate:
        raise AudioError(
            f"{name}: sample rate {probe.sample_rate} Hz; accepted: {limits.min_rate}-{limits.max_rate} Hz"
        )
    if probe.seconds > limits.max_seconds:
        raise AudioError(f"{name}: {probe.seconds:.1f} s is longer than the {limits.max_seconds:g} s limit")
    if probe.seconds < limits.min_seconds:
        raise AudioError(f"{name}: {probe.seconds:.2f} s is shorter than the {limits.min_seconds:g} s minimum")


def _check_size(name: str, probe: AudioProbe, limits: AudioLimits) -> None:
    """Declared audio that the file is too small to hold."""
    width = PCM_BYTES.get(probe.subtype)
    if width is not None and probe.format not in COMPRESSED_FORMATS:
        needed = probe.frames * probe.channels * width
        if needed > probe.size:
            raise AudioError(
                f"{name}: the header declares {needed} bytes of {probe.subtype} audio "
                f"but the file has {probe.size} bytes"
            )
        return
    ratio = probe.frames * probe.channels * 2 / probe.size
    if ratio > limits.max_ratio:
        raise AudioError(
            f"{name}: the header declares {probe.seconds:.1f} s of {probe.channels}-channel {probe.format} audio, "
            f"{ratio:.0f} times the file size as 16-bit PCM; accepted: at most {limits.max_ratio:g} times"
        )


def read_audio_bounded(
    path: str | os.PathLike, limits: AudioLimits | None = None, probe: AudioProbe | None = None
) -> tuple[np.ndarray, int]:
    """Decode ``path`` block by block to mono float32 at its native rate, never past ``limits.max_seconds``.

    Raises:
        AudioError: the header fails :func:`probe_audio`, more than ``max_seconds`` (or less than ``min_seconds``)
            of audio decodes, or the data is corrupt or too large to hold.
    """
    path, limits = Path(path), limits or AudioLimits()
    probe = probe or probe_audio(path, limits)
    rate = probe.sample_rate
    cap = int(min(math.floor(limits.max_seconds * rate), 2**62))
    quiet = probe.format == "MP3" or path.suffix.lower() == ".mp3"
    try:
        with quiet_native_stderr(quiet), sf.SoundFile(str(path)) as source:
            if (source.channels, source.samplerate) != (probe.channels, rate):
                raise AudioError(f"{path.name}: the file changed after its header was checked")
            audio = _decode_blocks(source, path.name, min(probe.frames, cap), cap, limits)
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(f"{path.name}: not enough memory to decode the recording") from None
    except (RuntimeError, ValueError) as exc:
        raise AudioError(f"{path.name}: corrupt audio data ({native_detail(exc, path)})") from None
    if audio.size < limits.min_seconds * rate:
        raise AudioError(f"{path.name}: {audio.size / rate:.2f} s is shorter than the {limits.min_seconds:g} s minimum")
    return audio, rate


def _decode_blocks(source: sf.SoundFile, name: str, initial: int, cap: int, limits: AudioLimits) -> np.ndarray:
    """Read ``source`` in blocks, each mixed to mono as it arrives, into a buffer grown up to ``cap`` frames."""
    block = max(1, int(limits.block_seconds * source.samplerate))
    buffer = np.empty(initial, dtype=np.float32)
    filled = 0
    while True:
        data = source.read(block, dtype="float32", always_2d=True)  # [frames, channels]
        if len(data) == 0:
            break
        if filled + len(data) > cap:
            seconds = limits.max_seconds
            raise AudioError(f"{name}: more than {seconds:g} s of audio decoded; longer than the {seconds:g} s limit")
        if filled + len(data) > len(buffer):
            buffer = _grow(buffer, filled, max(filled + len(data), 2 * len(buffer)), cap)
        buffer[filled : filled + len(data)] = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
        filled += len(data)
        if len(data) < block:
            break
    return buffer if filled == len(buffer) else buffer[:filled].copy()


def _grow(buffer: np.ndarray, filled: int, wanted: int, cap: int) -> np.ndarray:
    """A larger buffer holding the first ``filled`` samples of ``buffer``."""
    grown = np.empty(min(wanted, cap), dtype=np.float32)
    grown[:filled] = buffer[:filled]
    return grown
