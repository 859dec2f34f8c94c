"""Audio I/O: decode any supported file to mono float32, resample, and write WAV atomically."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
import soxr

from mockvox.atomic import atomic_file
from mockvox.audio.probe import AudioError, AudioLimits, UnreadableAudio, native_detail, probe_audio, read_audio_bounded

__all__ = ["AudioError", "AudioLimits", "load_audio", "resample", "to_int16", "write_wav"]

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
SILENCE_PEAK = 1e-4  # ~ -80 dBFS: anything quieter is treated as digital silence
FFMPEG_CHUNK = 1 << 16  # bytes read from ffmpeg's stdout at a time
FFMPEG_HEADER_MAX = 1 << 20  # a streamed WAV header (fmt, LIST, ...) is far smaller


def _wav_layout(head: bytearray, name: str) -> tuple[int, int, int] | None:
    """(sample rate, channels, data offset) of a streamed WAV header; None until its data chunk has begun."""
    if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
        raise AudioError(f"{name}: ffmpeg did not produce a WAV stream")
    pos, rate, channels = 12, 0, 0
    while pos + 8 <= len(head):
        tag, size = bytes(head[pos : pos + 4]), int.from_bytes(head[pos + 4 : pos + 8], "little")
        if tag == b"data":
            if not rate:
                raise AudioError(f"{name}: ffmpeg produced audio without a format chunk")
            return rate, channels, pos + 8
        if tag == b"fmt ":
            if pos + 16 > len(head):
                return None
            channels, rate = struct.unpack_from("<HI", head, pos + 10)
        pos += 8 + size + (size & 1)
    return None


def _read_ffmpeg_wav(stream: IO[bytes], name: str, limits: AudioLimits) -> tuple[np.ndarray, int]:
    """Mono float32 and its rate from ffmpeg's streamed WAV (rate 0: no WAV header came), read up to ``limits``."""
    raw, layout, cap = bytearray(), None, FFMPEG_HEADER_MAX
    while chunk := stream.read(FFMPEG_CHUNK):
        raw += chunk
        if layout is None and (layout := _wav_layout(raw, name)) is not None:
            rate, channels, offset = layout
            if channels != 1 or not limits.min_rate <= rate <= limits.max_rate:
                raise AudioError(
                    f"{name}: {channels} channel(s) at {rate} Hz from ffmpeg; "
                    f"accepted: mono at {limits.min_rate}-{limits.max_rate} Hz"
                )
            cap = offset + 4 * (math.floor(limits.max_seconds * rate) + 1)
        if len(raw) > cap:
            seconds = limits.max_seconds
            raise AudioError(f"{name}: more than {seconds:g} s of audio decoded; longer than the {seconds:g} s limit")
    if layout is None:
        return np.zeros(0, dtype=np.float32), 0
    rate, _, offset = layout
    return np.frombuffer(raw, dtype="<f4", count=(len(raw) - offset) // 4, offset=offset), rate


def _decode_ffmpeg(path: Path, limits: AudioLimits) -> tuple[np.ndarray, int]:
    """Decode a container libsndfile cannot read (m4a, aac, opus, ...) with ffmpeg: mono, native rate, bounded."""
    seconds = limits.max_seconds + 1.0  # one second more, so that a longer recording is reported, not cut
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-sn", "-dn", "-ac", "1"]
    command += ["-t", f"{seconds:g}", "-f", "wav", "-acodec", "pcm_f32le", "-"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        try:
            audio, rate = _read_ffmpeg_wav(process.stdout, path.name, limits)
        except AudioError:
            process.kill()
            raise
        except MemoryError:
            process.kill()
            raise AudioError(f"{path.name}: not enough memory to decode the recording") from None
        finally:
            process.stdout.close()
            process.wait()
        if process.returncode != 0 or rate == 0:
            detail = _ffmpeg_error(errors, path) or "no audio stream"
            raise AudioError(
                f"{path.name}: unsupported or corrupt audio (ffmpeg: {detail}); "
                f"accepted formats: {', '.join(SUPPORTED_EXTENSIONS)} and what ffmpeg decodes"
            )
    return audio, rate


def _ffmpeg_error(errors: IO[bytes], path: Path) -> str:
    """The last line ffmpeg wrote to ``errors``, without the file's directory."""
    errors.seek(0, os.SEEK_END)
    errors.seek(max(0, errors.tell() - 4096))
    lines = errors.read().decode(errors="replace").strip().splitlines()
    return native_detail(RuntimeError(lines[-1]), path) if lines else ""


def load_audio(
    path: str | os.PathLike, sr: int | None = None, max_seconds: float | None = None, limits: AudioLimits | None = None
) -> tuple[np.ndarray, int]:
    """Load a recording as mono float32, optionally resampled to ``sr``, decoding no more than ``limits`` allow.

    ``max_seconds``, when given, replaces ``limits.max_seconds`` (default limits: :class:`AudioLimits`).

    Raises:
        AudioError: the file is missing, empty, corrupt, of an unsupported format, zero-length, all silent,
            longer than the limit, or declares more channels, another sample rate or more audio than it holds.
    """
    path, limits = Path(path), limits or AudioLimits()
    if max_seconds is not None:
        limits = dataclasses.replace(limits, max_seconds=float(max_seconds))
    try:
        probe = probe_audio(path, limits)
    except UnreadableAudio:
        if shutil.which("ffmpeg") is None:
            known = path.suffix.lower() in SUPPORTED_EXTENSIONS
            kind = "unsupported or corrupt audio" if known else "unsupported format"
            raise AudioError(
                f"{path.name}: {kind}; accepted formats: {', '.join(SUPPORTED_EXTENSIONS)} (others need ffmpeg)"
            ) from None
        audio, native_sr = _decode_ffmpeg(path, limits)
    else:
        audio, native_sr = read_audio_bounded(path, limits, probe)
    return _check_and_resample(path.name, audio, native_sr, sr, limits.max_seconds)


def _check_and_resample(
    name: str, audio: np.ndarray, native_sr: int, sr: int | None, max_seconds: float | None
) -> tuple[np.ndarray, int]:
    if audio.size == 0:
        raise AudioError(f"{name}: the recording has zero length")
    if max_seconds is not None and audio.size > max_seconds * native_sr:
        raise AudioError(f"{name}: {audio.size / native_sr:.1f} s is longer than the {max_seconds:g} s limit")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: corrupt audio data (NaN or infinite samples)")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise AudioError(f"{name}: the recording is silent")
    if sr is not None and sr != native_sr:
        audio = resample(audio, native_sr, sr)
        native_sr = sr
    return np.ascontiguousarray(audio, dtype=np.float32), native_sr


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr) of a mono float32 signal."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float [-1, 1] to int16 (x 32767, clipped)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write 16-bit PCM mono WAV atomically (temporary file beside the target, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = audio if audio.dtype == np.int16 else to_int16(audio)
    with atomic_file(path) as tmp:
        sf.write(tmp, data, sr, format="WAV", subtype="PCM_16")
    return path


STREAM_UNKNOWN = 0xFFFFFFFF  # RIFF and data sizes of a stream of unknown length (libsndfile and ffmpeg read it all)


def wav_header(sample_rate: int, data_size: int = STREAM_UNKNOWN) -> bytes:
    """44-byte PCM16 mono header; sizes 0xFFFFFFFF when the length is not known (streaming)."""
    riff = STREAM_UNKNOWN if data_size == STREAM_UNKNOWN else 36 + data_size
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate,
            sample_rate * 2, 2, 16) + b"data" + struct.pack("<I", data_size))  # fmt: skip


def pcm16(audio: np.ndarray) -> bytes:
    """Little-endian 16-bit PCM bytes of float audio in [-1, 1]."""
    return to_int16(audio).astype("<i2").tobytes()
