"""Mandarin frontend: normalisation, pypinyin G2P with tone sandhi and erhua, opencpop phone mapping.

Corresponds to GPT-SoVITS v2 `text/chinese2.py` on its pypinyin branch (G2PW disabled), which is what the
golden fixtures use. Optional G2PW is not bundled: the pypinyin phrase dictionary decides polyphones.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

from mockvox.text import tone_sandhi, zh_norm
from mockvox.text.symbols import PUNCTUATION
from mockvox.text.zh_lexicon import MUST_ERHUA, NOT_ERHUA

_REP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…",
    "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
}  # fmt: skip
_REP_RE = re.compile("|".join(re.escape(k) for k in _REP))
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_KEEP_ZH = re.compile(rf"[^\u4e00-\u9fa5{_PUNCT_CLASS}]+")
_KEEP_ZH_EN = re.compile(rf"[^\u4e00-\u9fa5A-Za-z{_PUNCT_CLASS}]+")
_REPEATED_PUNCT = re.compile(rf"([{_PUNCT_CLASS}])([{_PUNCT_CLASS}])+")
_SENTENCE_END = re.compile(rf"(?<=[{_PUNCT_CLASS}])\s*")

_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s")


def replace_punctuation(text: str, keep_latin: bool = False) -> str:
    """Map CJK punctuation to the phone set and drop everything else that is not a Hanzi."""
    text = text.replace("嗯", "恩").replace("呣", "母")
    text = _REP_RE.sub(lambda m: _REP[m.group(0)], text)
    return (_KEEP_ZH_EN if keep_latin else _KEEP_ZH).sub("", text)


def text_normalize(text: str, keep_latin: bool = False) -> str:
    """Normalised Mandarin text: verbalised numbers, simplified characters, phone-set punctuation."""
    out = "".join(replace_punctuation(s, keep_latin) for s in zh_norm.normalize(text))
    return _REPEATED_PUNCT.sub(r"\1", out)


@lru_cache(maxsize=512)
def syllable_to_phones(pinyin: str) -> tuple[str, str]:
    """Map a toneless pinyin syllable (zero initials spelled with y/w) to the opencpop initial and final."""
    if pinyin in ("a", "ai", "an", "ang", "ao"):
        return "AA", pinyin
    if pinyin in ("e", "ei", "en", "eng", "er"):
        return "EE", pinyin
    if pinyin in ("o", "ou"):
        return "OO", pinyin
    if pinyin in ("yan", "ye"):
        return "y", "En" if pinyin == "yan" else "E"
    if pinyin in ("m", "hm"):  # interjections outside the opencpop table
        return "m", "u"
    if pinyin in ("n", "ng", "hng"):
        return "EE", "en"
    initial = next((i for i in _INITIALS + ("y", "w") if pinyin.startswith(i)), "")
    final = pinyin[len(initial) :]
    if initial in ("zh", "ch", "sh", "r") and final == "i":
        final = "ir"
    elif initial in ("z", "c", "s") and final == "i":
        final = "i0"
    elif initial in ("j", "q", "x", "y") and final in ("u", "uan", "ue", "un"):
        final = "v" + final[1:]
    elif final.startswith("v"):
        pass
    if not initial or not final:
        raise ValueError(f"not a Mandarin syllable: {pinyin!r}")
    return initial, final


def _spell_zero_initial(initial: str, final: str) -> str:
    """Rewrite pypinyin's initial+final (e.g. `"" + "iou"`) as a syllable spelling (e.g. `"you"`)."""
    if initial:
        return initial + {"uei": "ui", "iou": "iu", "uen": "un"}.get(final, final)
    whole = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
    if final in whole:
        return whole[final]
    lead = {"v": "yu", "e": "e", "i": "y", "u": "w"}
    return lead[final[0]] + final[1:] if final[0] in lead else final


def _merge_erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    if finals and word[len(finals) - 1 : len(finals)] == "儿" and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in MUST_ERHUA and (word in NOT_ERHUA or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    new_finals: list[str] = []
    for i, ph in enumerate(finals):
        last = i == len(finals) - 1
        if last and word[i] == "儿" and ph in {"er2", "er5"} and word[-2:] not in NOT_ERHUA and new_finals:
            ph = "er" + new_finals[-1][-1]
        new_finals.append(ph)
    return initials, new_finals


def _word_initials_finals(word: str, pos: str) -> tuple[list[str], list[str]]:
    initials = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS)
    finals = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)
    finals = tone_sandhi.modified_tone(word, pos, finals)
    return _merge_erhua(initials, finals, word, pos)


@lru_cache(maxsize=1)
def _posseg():
    import jieba
    import jieba_fast
    import jieba_fast.posseg as psg

    jieba.setLogLevel(logging.WARNING)
    jieba_fast.setLogLevel(logging.WARNING)
    return psg


def _segment(sentence: str) -> list[list[str]]:
    psg = _posseg()
    sentence = re.sub("[a-zA-Z]+", "", sentence)
    return tone_sandhi.pre_merge_for_modify([(w, p) for w, p in psg.lcut(sentence)])


def g2p(text: str) -> tuple[list[str], list[int]]:
    """Phones and word2ph (2 per Hanzi, 1 per punctuation) for normalised Mandarin text."""
    phones: list[str] = []
    word2ph: list[int] = []
    for sentence in (s for s in _SENTENCE_END.split(text) if s.strip()):
        initials: list[str] = []
        finals: list[str] = []
        for word, pos in _segment(sentence):
            if pos == "eng":
                continue
            ini, fin = _word_initials_finals(word, pos)
            initials += ini
            finals += fin
        for c, v in zip(initials, finals, strict=False):
            if c == v:
                phones.append(c)
                word2ph.append(1)
                continue
            tone = v[-1]
            new_c, new_v = syllable_to_phones(_spell_zero_initial(c, v[:-1]))
            phones += [new_c, new_v + tone]
            word2ph.append(2)
    return phones, word2ph
