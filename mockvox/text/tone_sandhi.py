"""Mandarin tone sandhi: 不/一 sandhi, neutral tones, third-tone chains, and the word merges before them.

Corresponds to `GPT_SoVITS/text/tone_sandhi.py` (PaddleSpeech `ToneSandhi`), same rules and word lists.
Finals are pypinyin `FINALS_TONE3` strings with tone 5 for the neutral tone (e.g. `"ao3"`).
"""

from __future__ import annotations

import jieba
from pypinyin import Style, lazy_pinyin

from mockvox.text.zh_lexicon import MUST_NEUTRAL_TONE_WORDS, MUST_NOT_NEUTRAL_TONE_WORDS

# GPT-SoVITS extends PaddleSpeech's list with these words. 幺幺 matters for phone numbers: jieba tags 幺 "nr"
# (a noun), so without the entry the reduplication rule would read the second 幺 in the neutral tone.
_NOT_NEUTRAL = MUST_NOT_NEUTRAL_TONE_WORDS | frozenset(
    """
    幺幺 干嘛 学子 哈哈 数数 袅袅 局地 以下 娃哈哈 花花草草 留得 耕地 想想 熙熙 攘攘 卵子 死死 冉冉 恳恳 佼佼 吵吵
    打打 考考 整整 莘莘 落地 算子 家家户户 青青
    """.split()
)
_PUNC = "：，；。？！“”‘’':,;.?!"
_NEUTRAL_ENDINGS = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"

Seg = list[list[str]]  # [[word, pos], ...]


def _set_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _finals(word: str) -> list[str]:
    return lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)


def _all_three(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _is_neutral_word(word: str) -> bool:
    return word in MUST_NEUTRAL_TONE_WORDS or word[-2:] in MUST_NEUTRAL_TONE_WORDS


def split_word(word: str) -> list[str]:
    """Split a word in two around its shortest jieba search-mode sub-word."""
    first = sorted(jieba.cut_for_search(word), key=len)[0]
    if word.find(first) == 0:
        return [first, word[len(first) :]]
    return [word[: -len(first)], first]


def _neutral_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    for j, ch in enumerate(word):
        if j >= 1 and ch == word[j - 1] and pos[0] in "nva" and word not in _NOT_NEUTRAL:
            finals[j] = _set_tone(finals[j], "5")
    ge = word.find("个")
    if word and word[-1] in _NEUTRAL_ENDINGS:
        finals[-1] = _set_tone(finals[-1], "5")
    elif word and word[-1] in "的地得":
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "们子" and pos in {"r", "n"} and word not in _NOT_NEUTRAL:
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "上下里" and pos in {"s", "l", "f"}:
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "来去" and word[-2] in "上下进出回过起开":
        finals[-1] = _set_tone(finals[-1], "5")
    elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
        finals[ge] = _set_tone(finals[ge], "5")
    elif _is_neutral_word(word):
        finals[-1] = _set_tone(finals[-1], "5")
    parts = split_word(word)
    groups = [finals[: len(parts[0])], finals[len(parts[0]) :]]
    for i, part in enumerate(parts):
        if _is_neutral_word(part):
            groups[i][-1] = _set_tone(groups[i][-1], "5")
    return groups[0] + groups[1]


def _bu_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":
        finals[1] = _set_tone(finals[1], "5")
    else:
        for i, ch in enumerate(word):
            if ch == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":
                finals[i] = _set_tone(finals[i], "2")
    return finals


def _yi_sandhi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(c.isnumeric() for c in word if c != "一"):
        return finals
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        finals[1] = _set_tone(finals[1], "5")
    elif word.startswith("第一"):
        finals[1] = _set_tone(finals[1], "1")
    else:
        for i, ch in enumerate(word):
            if ch == "一" and i + 1 < len(word):
                if finals[i + 1][-1] == "4":
                    finals[i] = _set_tone(finals[i], "2")
                elif word[i + 1] not in _PUNC:
                    finals[i] = _set_tone(finals[i], "4")
    return finals


def _three_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_three(finals):
        finals[0] = _set_tone(finals[0], "2")
    elif len(word) == 3:
        parts = split_word(word)
        if _all_three(finals):
            if len(parts[0]) == 2:
                finals[0] = _set_tone(finals[0], "2")
                finals[1] = _set_tone(finals[1], "2")
            elif len(parts[0]) == 1:
                finals[1] = _set_tone(finals[1], "2")
        else:
            groups = [finals[: len(parts[0])], finals[len(parts[0]) :]]
            for i, sub in enumerate(groups):
                if _all_three(sub) and len(sub) == 2:
                    sub[0] = _set_tone(sub[0], "2")
                elif i == 1 and not _all_three(sub) and sub[0][-1] == "3" and groups[0][-1][-1] == "3":
                    groups[0][-1] = _set_tone(groups[0][-1], "2")
                finals = groups[0] + groups[1]
    elif len(word) == 4:
        out: list[str] = []
        for sub in (finals[:2], finals[2:]):
            if _all_three(sub):
                sub[0] = _set_tone(sub[0], "2")
            out += sub
        finals = out
    return finals


def modified_tone(word: str, pos: str, finals: list[str]) -> list[str]:
    """Apply 不, 一, neutral-tone and third-tone sandhi to one word's finals."""
    finals = _bu_sandhi(word, finals)
    finals = _yi_sandhi(word, finals)
    finals = _neutral_sandhi(word, pos, finals)
    return _three_sandhi(word, finals)


def _merge_bu(seg: list[tuple[str, str]]) -> Seg:
    out: Seg = []
    last = ""
    for word, pos in seg:
        if last == "不":
            word = last + word
        if word != "不":
            out.append([word, pos])
        last = word
    if last == "不":
        out.append([last, "d"])
    return out


def _merge_yi(seg: Seg) -> Seg:
    out: Seg = []
    i = 0
    while i < len(seg):
        word, pos = seg[i]
        # verb + 一 + the same verb (both tagged "v") -> one word, e.g. 听/一/听 -> 听一听
        nxt = seg[i + 1] if i + 1 < len(seg) else None
        if out and word == "一" and nxt and out[-1][0] == nxt[0] and out[-1][1] == nxt[1] == "v":
            out[-1] = [out[-1][0] + "一" + nxt[0], "v"]
            i += 2
            continue
        out.append([word, pos])
        i += 1
    merged: Seg = []
    for word, pos in out:
        if merged and merged[-1][0] == "一":
            merged[-1][0] = merged[-1][0] + word
        else:
            merged.append([word, pos])
    return merged


def _merge_three_tones(seg: Seg, whole_words: bool) -> Seg:
    out: Seg = []
    finals = [_finals(word) for word, _ in seg]
    merged_last = [False] * len(seg)
    for i, (word, pos) in enumerate(seg):
        if whole_words:
            cond = i >= 1 and _all_three(finals[i - 1]) and _all_three(finals[i])
        else:
            cond = i >= 1 and finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
        prev = seg[i - 1][0] if i >= 1 else ""
        if cond and not merged_last[i - 1]:
            if not (len(prev) == 2 and prev[0] == prev[1]) and len(prev) + len(word) <= 3:
                out[-1][0] = out[-1][0] + word
                merged_last[i] = True
                continue
        out.append([word, pos])
    return out


def _merge_er(seg: Seg) -> Seg:
    out: Seg = []
    for i, (word, pos) in enumerate(seg):
        if i >= 1 and word == "儿" and seg[i - 1][0] != "#":
            out[-1][0] = out[-1][0] + word
        else:
            out.append([word, pos])
    return out


def _merge_reduplication(seg: Seg) -> Seg:
    out: Seg = []
    for word, pos in seg:
        if out and word == out[-1][0]:
            out[-1][0] = out[-1][0] + word
        else:
            out.append([word, pos])
    return out


def _try(fn, seg: Seg, *args) -> Seg:
    try:
        return fn(seg, *args)
    except (IndexError, ValueError):  # the official frontend skips a merge that fails
        return seg


def pre_merge_for_modify(seg: list[tuple[str, str]]) -> Seg:
    """Merge 不/一/reduplications/third-tone pairs/儿 with their neighbours before sandhi."""
    merged = _merge_bu(seg)
    merged = _merge_yi(merged)
    merged = _merge_reduplication(merged)
    merged = _try(_merge_three_tones, merged, True)
    merged = _try(_merge_three_tones, merged, False)
    return _merge_er(merged)
