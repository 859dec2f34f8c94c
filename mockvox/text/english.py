"""English frontend: normalisation, CMU dictionary with overrides, spelling, possessives, compounds, neural G2P.

Corresponds to GPT-SoVITS v2 `text/english.py` (`en_G2p`). Differs: NLTK's POS tagger (only used for
homographs) is replaced by a small context rule; the dictionaries are described in `en_dict`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mockvox.text import en_neural
from mockvox.text.en_dict import cmu_dict, name_dict
from mockvox.text.en_norm import normalize
from mockvox.text.symbols import PUNCTUATION, SYMBOL_SET

# (pronunciation if the POS tag starts with the tag, otherwise, tag) for homographs the official code fixes.
HOMOGRAPH_FIXES = {
    "read": (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP"),
    "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"], "JJ"),
}
_VERB_CUES = frozenset(
    "to will would can could shall should may might must please i you we they do does did not".split()
)
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_REPEATED_PUNCT = re.compile(rf"([{_PUNCT_CLASS}\s])([{_PUNCT_CLASS}])+")
_CJK_MARKS = {"。": ".", "！": "!", "？": "?"}
_VOICELESS = ("P", "T", "K", "F", "TH", "HH")
_SIBILANT = ("S", "Z", "SH", "ZH", "CH", "JH")


@lru_cache(maxsize=1)
def homographs() -> dict[str, tuple[list[str], list[str], str]]:
    """g2p_en's homograph table plus the official fixes."""
    table = {}
    for line in (en_neural.package_dir() / "homographs.en").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        head, pron1, pron2, pos = line.strip().split("|")
        table[head.lower()] = (pron1.split(), pron2.split(), pos)
    table.update(HOMOGRAPH_FIXES)
    return table


@lru_cache(maxsize=1)
def _tokenizer():
    from nltk.tokenize import TweetTokenizer

    return TweetTokenizer()


@lru_cache(maxsize=1)
def _wordsegment():
    import wordsegment

    wordsegment.load()
    return wordsegment


def text_normalize(text: str) -> str:
    """Normalised English text."""
    for src, dst in _CJK_MARKS.items():
        text = text.replace(src, dst)
    return _REPEATED_PUNCT.sub(r"\1", normalize(text))


def pos_tags(words: list[str]) -> list[str]:
    """Coarse POS tags: `VB` after a verb cue (to, modals, subject pronouns), else `NN`."""
    tags = []
    for i, _ in enumerate(words):
        prev = words[i - 1].lower() if i else ""
        tags.append("VB" if prev in _VERB_CUES else "NN")
    return tags


def _possessive(stem: list[str]) -> list[str]:
    if stem[-1] in _VOICELESS:
        return stem + ["S"]
    if stem[-1] in _SIBILANT:
        return stem + ["AH0", "Z"]
    return stem + ["Z"]


def lookup(o_word: str) -> list[str]:
    """Phones of one token that is not a homograph (the official `qryword` cascade)."""
    word = o_word.lower()
    table = cmu_dict()
    if len(word) > 1 and word in table:
        return list(table[word])
    if o_word.istitle() and word in name_dict():
        return list(name_dict()[word])
    if len(word) <= 3:
        phones: list[str] = []
        for ch in word:
            if ch == "a":
                phones.append("EY1")
            elif not ch.isalpha():
                phones.append(ch)
            else:
                phones += table[ch]
        return phones
    if re.match(r"^([a-z]+)('s)$", word):
        return _possessive(lookup(word[:-2]))
    parts = _wordsegment().segment(word)
    if len(parts) == 1:
        return list(en_neural.predict(word))
    return [ph for part in parts for ph in lookup(part)]


def _word_phones(o_word: str, pos: str) -> list[str]:
    word = o_word.lower()
    if re.search("[a-z]", word) is None:
        return [word]
    if len(word) == 1:
        return ["EY1"] if o_word == "A" else list(cmu_dict()[word])
    if word in homographs():
        pron1, pron2, pos1 = homographs()[word]
        if pos.startswith(pos1) or (len(pos) < len(pos1) and pos == pos1[: len(pos)]):
            return pron1
        return pron2
    return lookup(o_word)


def g2p(text: str) -> list[str]:
    """ARPAbet phones (with stress) and punctuation for normalised English text; `'` becomes `-`."""
    words = _tokenizer().tokenize(text)
    phones: list[str] = []
    for word, pos in zip(words, pos_tags(words), strict=True):
        phones += _word_phones(word, pos)
    out = []
    for ph in phones:
        ph = "UNK" if ph == "<unk>" else ph
        if ph in SYMBOL_SET:
            out.append(ph)
        elif ph == "'":
            out.append("-")
    return out
