"""Text arriving word by word is cut at sentence ends, never inside numbers, with offsets into all the text."""

from __future__ import annotations

from mockvox.infer.incremental import TextSegmenter


def _feed(seg: TextSegmenter, text: str, step: int = 3) -> list:
    out = []
    for i in range(0, len(text), step):
        out += seg.push(text[i : i + step])
    return out + seg.flush()


def test_sentences_come_out_as_soon_as_they_are_complete_with_their_offsets() -> None:
    text = "Pi is about 3.14 today. Short one. Then a much longer sentence follows here! 你好，世界。再见"
    seg = TextSegmenter(min_chars=15, max_chars=300)
    got = _feed(seg, text)
    assert [s.text for s in got] == ["Pi is about 3.14 today.", "Short one. Then a much longer sentence follows here!",
                                     "你好，世界。再见"]  # fmt: skip
    assert all(text[s.start : s.end] == s.text for s in got)


def test_a_latin_period_waits_for_the_next_character_and_a_cjk_mark_does_not() -> None:
    seg = TextSegmenter(min_chars=3)
    assert seg.push("Hello there.") == []  # "there.5" could follow
    assert [s.text for s in seg.push(" Next")] == ["Hello there."]
    assert [s.text for s in seg.push("。")] == ["Next。"]


def test_text_without_sentence_ends_is_cut_at_a_clause_then_a_space() -> None:
    seg = TextSegmenter(min_chars=5, max_chars=20)
    got = seg.push("one two three, four five six seven eight nine ten")
    assert got[0].text == "one two three," and len(got) >= 2
    assert all(len(s.text) <= 20 for s in got)
    assert "".join(s.text for s in got + seg.flush()).replace(" ", "") == "onetwothree,fourfivesixseveneightnineten"
