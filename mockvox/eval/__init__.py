"""Evaluation of synthesised speech: intelligibility, speaker similarity, quality and speaking rate."""

from mockvox.eval.metrics import (
    ResemblyzerEncoder,
    SpeakerEncoder,
    WavLMEncoder,
    duration_ratio,
    intelligibility,
    normalize_text,
    quality,
    speaker_similarity,
)

__all__ = [
    "ResemblyzerEncoder",
    "SpeakerEncoder",
    "WavLMEncoder",
    "duration_ratio",
    "evaluate",
    "intelligibility",
    "load_sentences",
    "normalize_text",
    "quality",
    "speaker_similarity",
]


def __getattr__(name: str):
    """``evaluate`` and ``load_sentences`` from :mod:`mockvox.eval.run`, imported on first use (torch, MLflow)."""
    if name in ("evaluate", "load_sentences"):
        from mockvox.eval import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
