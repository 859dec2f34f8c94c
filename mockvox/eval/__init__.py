"""Evaluation of synthesised speech: intelligibility, speaker similarity, quality and speaking rate."""

from mockvox.eval.metrics import (
    ResemblyzerEncoder,
    SpeakerEncoder,
    duration_ratio,
    intelligibility,
    normalize_text,
    quality,
    speaker_similarity,
)

__all__ = [
    "ResemblyzerEncoder",
    "SpeakerEncoder",
    "duration_ratio",
    "intelligibility",
    "normalize_text",
    "quality",
    "speaker_similarity",
]
