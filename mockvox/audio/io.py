"""Audio I/O: decode any supported file to mono float32, resample, and write WAV atomically."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mockvox.atomic import atomic_file

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
SILENCE_PEAK = 1e-4  # ~ -80 dBFS: anything quieter is treated as digital silence


class AudioError(ValueError):
    """A recording that cannot be used; the message names the problem."""


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool):
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


def _decode_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode a container libsndfile cannot read (m4a, aac, opus, ...) with ffmpeg at its native rate."""
    probe = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0 or not probe.stdout:
        detail = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no audio stream"]
        raise AudioError(
            f"{path.name}: unsupported or corrupt audio (ffmpeg: {detail[0]}); "
            f"accepted formats: {', '.join(SUPPORTED_EXTENSIONS)} and what ffmpeg decodes"
        )

    data, sr = sf.read(io.BytesIO(probe.stdout), dtype="float32", always_2d=True)
    return data, sr


def load_audio(
    path: str | os.PathLike, sr: int | None = None, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """Load a recording as mono float32, optionally resampled to ``sr``.

    Raises:
        AudioError: the file is missing, empty, corrupt, of an unsupported format, zero-length, all silent,
            or longer than ``max_seconds``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty (0 bytes)")
    quiet = path.suffix.lower() == ".mp3"
    try:
        with _quiet_native_stderr(quiet):
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        if shutil.which("ffmpeg") is None:
            known = path.suffix.lower() in SUPPORTED_EXTENSIONS
            kind = "unsupported or corrupt audio" if known else "unsupported format"
            raise AudioError(
                f"{path.name}: {kind}; accepted formats: {', '.join(SUPPORTED_EXTENSIONS)} (others need ffmpeg)"
            ) from None
        data, native_sr = _decode_ffmpeg(path)
    else:
        if max_seconds is not None and info.frames > max_seconds * info.samplerate:
            seconds = info.frames / info.samplerate
            raise AudioError(f"{path.name}: {seconds:.1f} s is longer than the {max_seconds:g} s limit")
        try:
            with _quiet_native_stderr(quiet):
                data, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{path.name}: corrupt audio data ({exc})") from None
    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return _check_and_resample(path.name, audio, native_sr, sr, max_seconds)


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
