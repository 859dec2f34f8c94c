"""Text that arrives piece by piece (an LLM's tokens) cut into speakable segments as soon as they are complete.

A segment ends at a sentence mark once it holds ``min_chars`` characters; a Latin ``.``/``?``/``!`` counts only
when what follows is a space or a line break (``3.14``, ``e.g.x`` and a mark whose next character has not arrived
yet do not cut), a CJK mark (``。？！…``) cuts at once. Text that reaches ``max_chars`` without a sentence mark is cut
at its last clause mark (``，,;；:：—``), else at its last space, else where it is. ``flush`` gives what is left.
Each segment carries its character offsets in everything pushed so far, so a client can tell what is being spoken.
"""

from __future__ import annotations

from dataclasses import dataclass

CJK_ENDS = frozenset("。？！…～")
LATIN_ENDS = frozenset(".?!~")
CLAUSES = frozenset("，,;；:：—、")


@dataclass(frozen=True)
class Segment:
    text: str
    start: int  # offset of its first character in the whole text received
    end: int  # offset after its last character


class TextSegmenter:
    def __init__(self, min_chars: int = 30, max_chars: int = 300):
        if not 1 <= min_chars <= max_chars:
            raise ValueError(f"need 1 <= min_chars ({min_chars}) <= max_chars ({max_chars})")
        self.min_chars, self.max_chars = min_chars, max_chars
        self._buf = ""
        self._base = 0  # offset of _buf[0]

    @property
    def pending(self) -> str:
        return self._buf

    def push(self, text: str) -> list[Segment]:
        """Add text; the segments it completes."""
        self._buf += text
        out = []
        while (cut := self._next_cut()) is not None:
            out.extend(self._take(cut))
        return out

    def flush(self) -> list[Segment]:
        """Everything buffered, as one segment (none when it is blank)."""
        return self._take(len(self._buf))

    def _take(self, cut: int) -> list[Segment]:
        piece, start = self._buf[:cut], self._base
        self._buf, self._base = self._buf[cut:], self._base + cut
        if not piece.strip():
            return []
        lead = len(piece) - len(piece.lstrip())
        body = piece.strip()
        return [Segment(body, start + lead, start + lead + len(body))]

    def _next_cut(self) -> int | None:
        buf = self._buf
        size = 0
        for i, ch in enumerate(buf):
            if not ch.isspace():
                size += 1
            end = None
            if ch in CJK_ENDS or ch == "\n":
                end = i + 1
            elif ch in LATIN_ENDS and i + 1 < len(buf) and buf[i + 1].isspace():
                end = i + 1
            if end is not None:
                while end < len(buf) and buf[end] in CJK_ENDS | LATIN_ENDS:  # "?!", "……" stay together
                    end += 1
                if size >= self.min_chars:
                    return end
            if size >= self.max_chars:
                return self._fallback_cut(buf[: i + 1])
        return None

    @staticmethod
    def _fallback_cut(head: str) -> int:
        for marks in (CLAUSES, None):
            for j in range(len(head) - 1, 0, -1):
                if (head[j] in marks) if marks is not None else head[j].isspace():
                    return j + 1
        return len(head)
