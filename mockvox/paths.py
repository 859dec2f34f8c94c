"""Where MockVox keeps its files: installed models per user (the MockVox home), datasets per project (the data root).

The home is ``$MOCKVOX_HOME`` (default ``~/.cache/mockvox``, in ``$XDG_CACHE_HOME`` when that is set), the same from
every working directory. It holds ``pretrained/`` (Whisper and official GPT-SoVITS weights; ``$MOCKVOX_PRETRAINED``
or ``paths.pretrained_dir`` move it) and ``text/`` (text-frontend data; ``$MOCKVOX_TEXT_DATA`` moves it). The data
root stays relative to the working directory (``./data``, like ``mlruns/``) and is made absolute once, when a config
is composed (:func:`mockvox.config.finalize_paths`).
"""

from __future__ import annotations

import os
from pathlib import Path


def absolute(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory (symbolic links kept)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def _env_dir(name: str) -> Path | None:
    value = os.environ.get(name)
    return absolute(value) if value else None


def home() -> Path:
    """The MockVox home: ``$MOCKVOX_HOME``, else ``mockvox`` in ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    return _env_dir("MOCKVOX_HOME") or (_env_dir("XDG_CACHE_HOME") or absolute("~/.cache")) / "mockvox"


def pretrained_dir() -> Path:
    """Installed model weights: ``$MOCKVOX_PRETRAINED``, else ``<home>/pretrained``."""
    return _env_dir("MOCKVOX_PRETRAINED") or home() / "pretrained"


def text_data_dir() -> Path:
    """Text-frontend data (dictionaries, NLTK corpus): ``$MOCKVOX_TEXT_DATA``, else ``<home>/text``."""
    return _env_dir("MOCKVOX_TEXT_DATA") or home() / "text"
