"""Japanese frontend: pyopenjtalk full-context labels -> phonemes with prosody marks.

Corresponds to GPT-SoVITS v2 `text/japanese.py` with `with_prosody=True` (the ESPnet/r9y9
`pyopenjtalk_g2p_prosody` algorithm): `[` pitch rise, `]` pitch fall, `#` accent-phrase boundary (not in the
v2 table, so it becomes `UNK` like in the official output), `_` pause; unvoiced vowels lower-cased.
Differs: no LLM-made user dictionary of English loanwords is loaded.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from mockvox.text.symbols import PUNCTUATION

DEBIAN_DICT_DIR = "/var/lib/mecab/dic/open-jtalk/naist-jdic"
_JA_CHARS = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JAPANESE = re.compile(rf"[{_JA_CHARS}]")
_MARKS = re.compile(rf"[^{_JA_CHARS}]")
_MARK_MAP = {
    "：": ",",
    "；": ",",
    "，": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "\n": ".",
    "·": ",",
    "、": ",",
    "...": "…",
}
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_REPEATED_PUNCT = re.compile(rf"([{_PUNCT_CLASS}])([{_PUNCT_CLASS}])+")


@lru_cache(maxsize=1)
def _openjtalk():
    """Import pyopenjtalk, pointing it at Debian's naist-jdic 1.11 when no dictionary is configured."""
    if "OPEN_JTALK_DICT_DIR" not in os.environ and os.path.isdir(DEBIAN_DICT_DIR):
        os.environ["OPEN_JTALK_DICT_DIR"] = DEBIAN_DICT_DIR
    import pyopenjtalk

    return pyopenjtalk


def _feature(pattern: str, label: str) -> int:
    m = re.search(pattern, label)
    return -50 if m is None else int(m.group(1))


def g2p_prosody(text: str) -> list[str]:
    """Phonemes and prosody marks of one Japanese run, including the leading `^` and final `$`/`?`."""
    pyopenjtalk = _openjtalk()
    labels = pyopenjtalk.make_label(pyopenjtalk.run_frontend(text))
    out: list[str] = []
    for n, label in enumerate(labels):
        p3 = re.search(r"\-(.*?)\+", label).group(1)
        if p3 in "AEIOU":
            p3 = p3.lower()
        if p3 == "sil":
            if n == 0:
                out.append("^")
            elif n == len(labels) - 1:
                e3 = _feature(r"!(\d+)_", label)
                if e3 in (0, 1):
                    out.append("$" if e3 == 0 else "?")
            continue
        if p3 == "pau":
            out.append("_")
            continue
        out.append(p3)
        a1 = _feature(r"/A:([0-9\-]+)\+", label)
        a2 = _feature(r"\+(\d+)\+", label)
        a3 = _feature(r"\+(\d+)/", label)
        f1 = _feature(r"/F:(\d+)_", label)
        a2_next = _feature(r"\+(\d+)\+", labels[n + 1])
        if a3 == 1 and a2_next == 1 and p3 in "aeiouAEIOUNcl":
            out.append("#")
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            out.append("]")
        elif a2 == 1 and a2_next == 2:
            out.append("[")
    return out


def text_normalize(text: str) -> str:
    """Only repeated punctuation is collapsed (the official frontend has no other Japanese normalisation)."""
    return _REPEATED_PUNCT.sub(r"\1", text)


def g2p(text: str) -> list[str]:
    """Phones for Japanese text: runs of Japanese characters via OpenJTalk, other marks kept (spaces dropped)."""
    text = text.replace("％", "パーセント").lower()
    runs = _MARKS.split(text)
    marks = _MARKS.findall(text)
    phones: list[str] = []
    for i, run in enumerate(runs):
        if _JAPANESE.match(run):
            phones += g2p_prosody(run)[1:-1]
        if i < len(marks) and marks[i] != " ":
            phones.append(marks[i].replace(" ", ""))
    return [_MARK_MAP.get(p, p) for p in phones]
