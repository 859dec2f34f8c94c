"""Korean frontend: Latin letters spelled in Hangul, g2pk2 (with mecab) pronunciation, jamo decomposition.

Corresponds to GPT-SoVITS v2 `text/korean.py`: `空` marks a space, `停` any character outside the v2 table,
and a `.` is appended after a final jamo.
"""

from __future__ import annotations

import contextlib
import io
import re
from functools import lru_cache

from mockvox.text.nltk_cmudict import ensure_nltk_cmudict
from mockvox.text.symbols import SYMBOL_SET

LATIN_TO_HANGUL = {
    "a": "에이", "b": "비", "c": "시", "d": "디", "e": "이", "f": "에프", "g": "지", "h": "에이치", "i": "아이",
    "j": "제이", "k": "케이", "l": "엘", "m": "엠", "n": "엔", "o": "오", "p": "피", "q": "큐", "r": "아르",
    "s": "에스", "t": "티", "u": "유", "v": "브이", "w": "더블유", "x": "엑스", "y": "와이", "z": "제트",
}  # fmt: skip
# Compound vowels written as two simple vowels.
DIVIDED_VOWELS = {
    "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ", "ㅑ": "ㅣㅏ",
    "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅛ": "ㅣㅗ", "ㅠ": "ㅣㅜ",
}  # fmt: skip
_MARK_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…",
    " ": "空",
}  # fmt: skip


@lru_cache(maxsize=1)
def _g2pk2():
    ensure_nltk_cmudict()
    from g2pk2 import G2p

    with contextlib.redirect_stdout(io.StringIO()):  # g2pk2 prints its mecab check
        return G2p()


def latin_to_hangul(text: str) -> str:
    """Spell each Latin letter with its Korean name (`A` -> 에이)."""
    return "".join(LATIN_TO_HANGUL.get(c.lower(), c) if c.isascii() and c.isalpha() else c for c in text)


def divide_hangul(text: str) -> str:
    """Syllables -> compatibility jamo, compound vowels split in two."""
    from jamo import h2j, j2hcj

    return "".join(DIVIDED_VOWELS.get(c, c) for c in j2hcj(h2j(text)))


def fix_g2pk2_error(text: str) -> str:
    """Undo g2pk2's ㄹ-nasalisation across a space after 을/를 (`ㅇㅡㄹ ㄹ` -> `ㅇㅡㄹ ㄴ`)."""
    out, i = "", 0
    while i < len(text) - 4:
        if text[i : i + 3] in ("ㅇㅡㄹ", "ㄹㅡㄹ") and text[i + 3] == " " and text[i + 4] == "ㄹ":
            out += text[i : i + 3] + " ㄴ"
            i += 5
        else:
            out += text[i]
            i += 1
    return out + text[i:]


def text_normalize(text: str) -> str:
    """Korean text is passed through unchanged (numbers are read by g2pk2)."""
    return text


def g2p(text: str) -> list[str]:
    """One phone per jamo; spaces become `空`, characters outside the table `停`."""
    text = divide_hangul(_g2pk2()(latin_to_hangul(text)))
    text = re.sub(r"([\u3131-\u3163])$", r"\1.", fix_g2pk2_error(text))
    out = []
    for ch in text:
        ph = _MARK_MAP.get(ch, ch)
        out.append(ph if ph in SYMBOL_SET else "停")
    return out
