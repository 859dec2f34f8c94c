"""Text splitting for synthesis: methods cut0-cut5 and the official post-processing of the pieces.

Corresponds to GPT-SoVITS v2 `TTS_infer_pack/text_segmentation_method.py` and `TextPreprocessor.pre_seg_text`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

SPLITS = frozenset("，。？！,.?!~:：—…")
_CUT5_MARKS = frozenset(",.;?!、，。？！;：…")
_PUNCT = "!?…,.-"
_REPEATED_PUNCT = re.compile(rf"([{re.escape(_PUNCT)}])([{re.escape(_PUNCT)}])+")
MAX_PIECE = 510


def _split_long(text: str, max_length: int = MAX_PIECE) -> str:
    out = []
    for line in text.split("\n"):
        while len(line) > max_length:
            out.append(line[:max_length])
            line = line[max_length:]
        if line:
            out.append(line)
    return "\n".join(out)


def sentences(text: str) -> list[str]:
    """Sentences ending at a split mark (`……` -> `。`, `——` -> `，`); a final `。` is added when missing."""
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in SPLITS:
        text += "。"
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in SPLITS:
            out.append(text[start : i + 1])
            start = i + 1
    return out


def cut0(text: str) -> str:
    """No split."""
    return text


def cut1(text: str) -> str:
    """Every four sentences; the last piece takes the remainder (up to seven sentences)."""
    text = _split_long(text).strip("\n")
    parts = sentences(text)
    bounds: list[int | None] = list(range(0, len(parts), 4))
    bounds[-1] = None
    if len(bounds) == 1:
        return text
    return "\n".join("".join(parts[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1))


def cut2(text: str, max_length: int = 50) -> str:
    """Sentences accumulated until more than 50 characters; a short tail joins the previous piece."""
    text = _split_long(text).strip("\n")
    parts = sentences(text)
    if len(parts) < 2:
        return text
    out, buf = [], ""
    for part in parts:
        buf += part
        if len(buf) > max_length:
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    if len(out) > 1 and len(out[-1]) < max_length:
        tail = out.pop()
        out[-1] += tail
    return "\n".join(out)


def cut3(text: str) -> str:
    """At each `。`."""
    text = _split_long(text).strip("\n")
    return "\n".join(text.strip("。").split("。"))


def cut4(text: str) -> str:
    """At each `.` that is not a decimal point."""
    text = _split_long(text).strip("\n")
    parts = re.split(r"(?<!\d)\.(?!\d)", text.strip("."))
    return "\n".join(p for p in parts if not set(p) <= set(_PUNCT + " "))


def cut5(text: str) -> str:
    """After every punctuation mark, keeping decimal points inside numbers."""
    text = _split_long(text).strip("\n")
    out, buf = [], []
    for i, ch in enumerate(text):
        buf.append(ch)
        if ch in _CUT5_MARKS:
            if ch == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
                continue
            out.append("".join(buf))
            buf = []
    if buf:
        out.append("".join(buf))
    return "\n".join(p for p in out if not set(p) <= _CUT5_MARKS)


METHODS: dict[str, Callable[[str], str]] = {
    "cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5,
}  # fmt: skip


def split_big_text(text: str, max_len: int = MAX_PIECE) -> list[str]:
    """Cut a piece longer than `max_len` at split marks."""
    out, cur = [], ""
    for seg in re.split("([" + "".join(SPLITS) + "])", text):
        if len(cur + seg) > max_len:
            out.append(cur)
            cur = seg
        else:
            cur += seg
    if cur:
        out.append(cur)
    return out


def merge_short(texts: list[str], threshold: int = 5) -> list[str]:
    """Join consecutive pieces until each has at least `threshold` characters."""
    if len(texts) < 2:
        return texts
    out, buf = [], ""
    for t in texts:
        buf += t
        if len(buf) >= threshold:
            out.append(buf)
            buf = ""
    if buf:
        if out:
            out[-1] += buf
        else:
            out.append(buf)
    return out


def split_text(text: str, method: str = "cut5", lang: str = "zh") -> list[str]:
    """Synthesis pieces of `text`: the official pre-processing, a cut method, then the post-processing.

    Raises:
        ValueError: unknown method, or a text with nothing to read.
    """
    if method not in METHODS:
        raise ValueError(f"unknown text split method {method!r}; accepted: {', '.join(METHODS)}")
    end = "." if lang == "en" else "。"
    text = _REPEATED_PUNCT.sub(r"\1", text).strip("\n")
    if not text:
        return []
    first = re.split("[" + "".join(re.escape(s) for s in SPLITS) + "]", text)[0].strip()
    if text[0] not in SPLITS and len(first) < 4:
        text = end + text
    text = METHODS[method](text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    pieces = text.split("\n")
    if all(p in ("", " ") for p in pieces):
        raise ValueError("the text has nothing to read")
    pieces = merge_short([p for p in pieces if p not in ("", " ")], 5)
    out: list[str] = []
    for piece in pieces:
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue
        if piece[-1] not in SPLITS:
            piece += end
        out.extend(split_big_text(piece) if len(piece) > MAX_PIECE else [piece])
    return out
