"""`clean_text`: per-language normalisation + G2P with the official return contract.

Corresponds to GPT-SoVITS v2 `text/cleaner.py::clean_text(text, language, version="v2")`.
"""

from __future__ import annotations

import importlib

from mockvox.text.symbols import SYMBOL_SET, UNK

LANGUAGES = ("zh", "en", "ja", "ko", "yue")
# MockVox spells Cantonese "can".
LANGUAGE_ALIASES = {"can": "yue"}
_MODULES = {"zh": "chinese", "en": "english", "ja": "japanese", "ko": "korean", "yue": "cantonese"}
# Pause marks of the Mandarin frontend: the mark becomes "," and every "," phone becomes the pause symbol.
_SPECIAL = (("￥", "SP2"), ("^", "SP3"))


def _module(language: str):
    return importlib.import_module(f"mockvox.text.{_MODULES[language]}")


def normalize_language(language: str) -> str:
    """Canonical language code (`can` -> `yue`); raises on an unknown code."""
    lang = LANGUAGE_ALIASES.get(language, language)
    if lang not in LANGUAGES:
        accepted = ", ".join(LANGUAGES + tuple(LANGUAGE_ALIASES))
        raise ValueError(f"unknown language {language!r}; accepted: {accepted}")
    return lang


def clean_text(text: str, language: str) -> tuple[list[str], list[int] | None, str]:
    """Normalise `text` and convert it to v2 phone symbols.

    Returns:
        (phones, word2ph, norm_text): word2ph has one entry per character of norm_text for zh/yue
        (2 per syllable, 1 per punctuation mark) and is None for en/ja/ko.
    """
    lang = normalize_language(language)
    if lang == "zh":
        for mark, pause in _SPECIAL:
            if mark in text:
                return _clean_with_pause(text.replace(mark, ","), pause)
    module = _module(lang)
    norm_text = module.text_normalize(text)
    word2ph: list[int] | None = None
    if lang in ("zh", "yue"):
        phones, word2ph = module.g2p(norm_text)
    else:
        phones = module.g2p(norm_text)
        if lang == "en" and len(phones) < 4:
            phones = [","] + phones
    return [p if p in SYMBOL_SET else UNK for p in phones], word2ph, norm_text


def _clean_with_pause(text: str, pause: str) -> tuple[list[str], list[int], str]:
    module = _module("zh")
    norm_text = module.text_normalize(text)
    phones, word2ph = module.g2p(norm_text)
    return [pause if p == "," else p for p in phones], word2ph, norm_text
