"""Synthesis language modes: split mixed text into per-language segments and clean each one.

Corresponds to GPT-SoVITS v2 `TextPreprocessor.get_phones_and_bert` (phones part; BERT features are in
`mockvox.text.bert`). MockVox's Cantonese spellings `all_can`, `can`, `auto_can` are accepted too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mockvox.text.cleaner import LANGUAGES, clean_text
from mockvox.text.langseg import get_texts

MODES = ("all_zh", "zh", "en", "all_ja", "ja", "all_ko", "ko", "all_yue", "yue", "auto", "auto_yue")
MODE_ALIASES = {"all_can": "all_yue", "can": "yue", "auto_can": "auto_yue"}
_MIN_PHONES = 6


@dataclass
class TextSegment:
    """One single-language piece of the input and its cleaned form."""

    lang: str
    text: str
    phones: list[str]
    word2ph: list[int] | None
    norm_text: str


def normalize_mode(mode: str) -> str:
    """Canonical mode name; raises on an unknown mode."""
    canonical = MODE_ALIASES.get(mode, mode)
    if canonical not in MODES:
        raise ValueError(f"unknown language mode {mode!r}; accepted: {', '.join(MODES + tuple(MODE_ALIASES))}")
    return canonical


def split_by_mode(text: str, mode: str) -> list[tuple[str, str]]:
    """(language, text) pieces of `text` for a language mode."""
    mode = normalize_mode(mode)
    if mode == "en":
        return [("en", text)]
    if mode.startswith("all_"):
        lang = mode[4:]
        segs = get_texts(text, "zh" if lang == "yue" else lang)
        return [("yue" if lang == "yue" and s["lang"] == "zh" else s["lang"], s["text"]) for s in segs]
    if mode in ("auto", "auto_yue"):
        segs = get_texts(text)
        return [("yue" if mode == "auto_yue" and s["lang"] == "zh" else s["lang"], s["text"]) for s in segs]
    pieces: list[tuple[str, str]] = []
    for seg in get_texts(text):  # X + English: every non-English run is read as the user's language
        lang = "en" if seg["lang"] == "en" else mode
        if pieces and (pieces[-1][0] == "en") == (lang == "en"):
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + seg["text"])
        else:
            pieces.append((lang, seg["text"]))
    return pieces


def _clean(lang: str, piece: str) -> TextSegment:
    if lang not in LANGUAGES:  # e.g. a punctuation-only run: the official cleaner reads it as English " "
        return TextSegment("en", piece, *clean_text(" ", "en"))
    return TextSegment(lang, piece, *clean_text(piece, lang))


def segments_for_mode(text: str, mode: str, _final: bool = False) -> list[TextSegment]:
    """Cleaned segments for a mode, retrying once with a leading `.` when fewer than 6 phones come out."""
    text = re.sub(r" {2,}", " ", text)
    segments = [_clean(lang, piece) for lang, piece in split_by_mode(text, mode)]
    if not _final and sum(len(s.phones) for s in segments) < _MIN_PHONES:
        return segments_for_mode("." + text, mode, _final=True)
    return segments


def phones_for_mode(text: str, mode: str) -> tuple[list[str], None, str]:
    """Concatenated phones and normalised text of `text` read in a language mode (word2ph is None)."""
    segments = segments_for_mode(text, mode)
    return [p for s in segments for p in s.phones], None, "".join(s.norm_text for s in segments)
