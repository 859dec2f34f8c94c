"""Cantonese frontend: Mandarin-style normalisation, ToJyutping readings, `Y`-prefixed Jyutping units.

Corresponds to GPT-SoVITS v2 `text/cantonese.py` (ToJyutping version); same splitting of syllables into
an initial and a toned final, including its splits of vowel-initial syllables (`aa3` -> `Yaa Ya3`).
"""

from __future__ import annotations

import re

from mockvox.text import zh_norm
from mockvox.text.symbols import PUNCTUATION

_REP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…",
    "$": ".", "“": "'", "”": "'", '"': "'", "‘": "'", "’": "'", "（": "'", "）": "'", "(": "'", ")": "'", "《": "'",
    "》": "'", "【": "'", "】": "'", "[": "'", "]": "'", "—": "-", "～": "-", "~": "-", "「": "'", "」": "'",
}  # fmt: skip
_REP_RE = re.compile("|".join(re.escape(k) for k in _REP))
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_KEEP = re.compile(rf"[^\u4e00-\u9fa5{_PUNCT_CLASS}]+")
_ALL_PUNCT = re.compile(rf"^[{_PUNCT_CLASS}]+$")
_SPLIT_PUNCT = re.compile(rf"([{_PUNCT_CLASS}])")
_JYUTPING = re.compile(r"^([a-z]+[1-6]+[ ]?)+$")

# Initials tried in this order (first prefix match wins); vowel-initial syllables match an entry too.
INITIALS = (
    "aa", "aai", "aak", "aap", "aat", "aau", "ai", "au", "ap", "at", "ak", "a", "p", "b", "e", "ts", "t", "dz",
    "d", "kw", "k", "gw", "g", "f", "h", "l", "m", "ng", "n", "s", "y", "w", "c", "z", "j", "ong", "on", "ou",
    "oi", "ok", "o", "uk", "ung", "sp", "spl", "spn", "sil",
)  # fmt: skip


def text_normalize(text: str) -> str:
    """Normalised text (simplified characters, like the official frontend); punctuation is not collapsed."""
    out = []
    for sentence in zh_norm.normalize(text):
        sentence = _REP_RE.sub(lambda m: _REP[m.group(0)], sentence)
        out.append(_KEEP.sub("", sentence))
    return "".join(out)


def get_jyutping(text: str) -> list[str]:
    """Jyutping syllables and punctuation marks of normalised text, one entry per character."""
    import ToJyutping

    out: list[str] = []
    for word, syllable in ToJyutping.get_jyutping_list(text):
        if _ALL_PUNCT.match(word):
            out += [p for p in _SPLIT_PUNCT.split(word) if p]
        elif syllable is None or not _JYUTPING.search(syllable):
            raise ValueError(f"no Jyutping reading for {word!r}")
        else:
            out.append(syllable)
    return out


def _split_syllable(syllable: str) -> tuple[str, str]:
    """`"gwong2"` -> (`"Ygw"`, `"Yong2"`)."""
    tone = syllable[-1] if syllable[-1].isdigit() else ""
    body = syllable[:-1] if tone else syllable
    initial = next((i for i in INITIALS if body.startswith(i)), body[0])
    if body.startswith("nga"):
        initial = "ng"
    final = body[len(initial) :] or initial[-1]
    return "Y" + initial, "Y" + final + tone


def g2p(text: str) -> tuple[list[str], list[int]]:
    """Phones and word2ph (2 per syllable, 1 per punctuation mark)."""
    phones: list[str] = []
    word2ph: list[int] = []
    for unit in get_jyutping(text):
        if unit in PUNCTUATION:
            phones.append(unit)
            word2ph.append(1)
        else:
            phones += _split_syllable(unit)
            word2ph.append(2)
    return phones, word2ph
