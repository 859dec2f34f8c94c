"""Synthesis pipeline: model folders (`mockvox.voice`) and text-to-speech (`mockvox.infer.pipeline`).

Imported lazily, so ``import mockvox.infer`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "LoadedVoice": "mockvox.voice",
    "load_voice": "mockvox.voice",
    "write_voice": "mockvox.voice",
    "Prompt": "mockvox.infer.pipeline",
    "SynthesisError": "mockvox.infer.pipeline",
    "SynthesisParams": "mockvox.infer.pipeline",
    "Synthesizer": "mockvox.infer.pipeline",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
