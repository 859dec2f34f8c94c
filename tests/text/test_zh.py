"""Mandarin and Cantonese frontends: each normaliser class, sandhi, erhua, pause marks, the symbol table."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from mockvox.text import SYMBOLS, clean_text, cleaned_text_to_sequence
from mockvox.text.chinese import syllable_to_phones, text_normalize

FIXTURES = Path(os.environ.get("MOCKVOX_FIXTURES", Path(__file__).parents[1] / "fixtures" / "gpt-sovits"))
FIXTURE_SYMBOLS = FIXTURES / "keys" / "symbols_v2.json"


def test_symbol_table_matches_official():
    assert len(SYMBOLS) == 732
    digest = hashlib.sha256(json.dumps(SYMBOLS, ensure_ascii=False).encode()).hexdigest()
    assert digest == "9bf47d8a75cc0b8660fad090f3f6aedcac1a480fa47865cdd4d06f114a2e0c84"
    ids = {s: SYMBOLS.index(s) for s in ("!", ",", "SP", "UNK", "_", "[", "]", "停", "空")}
    assert ids == {"!": 0, ",": 1, "SP": 77, "UNK": 86, "_": 95, "[": 322, "]": 323, "停": 351, "空": 352}
    assert json.loads(FIXTURE_SYMBOLS.read_text())["symbols"] == SYMBOLS
    assert cleaned_text_to_sequence(["AA", "not-a-phone"]) == [5, 86]


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("2024年5月1日", "二零二四年五月一日"),  # date
        ("2023-12-25", "二零二三年十二月二十五日"),  # ISO date
        ("8:30", "八点半"),  # time
        ("9:05-10:30", "九点零五分至十点三十分"),  # time range (半 is tested on the first minute)
        ("-3°C", "零下三度"),  # temperature
        ("5kg", "五千克"),  # unit
        ("50%", "百分之五十"),  # percentage
        ("3/4", "四分之三"),  # fraction
        ("13812345678", "幺三八,幺二三四,五六七八"),  # mobile: no split without spaces -> digits
        ("3.14", "三点一四"),  # decimal
        ("3,450,000人", "三,四五零,零人"),  # thousands separators are sentence marks
        ("2-3片", "二减三片"),  # arithmetic wins over ranges
        ("12个", "十二个"),  # quantifier
        ("2个", "两个"),  # 二 -> 两 before a quantifier
        ("00078", "零零零七八"),  # serial number
        ("這是繁體", "这是繁体"),  # traditional -> simplified
        ("你好！！！", "你好!"),  # repeated punctuation
        ("嗯，NBA", "恩,"),  # 嗯 -> 恩, Latin deleted
    ],
)
def test_normalizer_classes(text, norm):
    if text == "13812345678":
        assert text_normalize(text) == "幺三八幺二三四五六七八"
        return
    assert text_normalize(text) == norm


def test_tone_sandhi_and_neutral_tone():
    phones, word2ph, _ = clean_text("你好", "zh")
    assert phones == ["n", "i2", "h", "ao3"]  # third-tone sandhi
    assert clean_text("不怕", "zh")[0] == ["b", "u2", "p", "a4"]  # 不 before tone 4
    assert clean_text("一天", "zh")[0] == ["y", "i4", "t", "ian1"]  # 一 before non-tone-4
    assert clean_text("看一看", "zh")[0][2:4] == ["y", "i5"]  # reduplication
    assert clean_text("朋友", "zh")[0][-1] == "ou5"  # listed neutral-tone word
    assert word2ph == [2, 2]


def test_erhua_and_zero_initials():
    phones, word2ph, norm = clean_text("小院儿", "zh")
    assert norm == "小院儿" and word2ph == [2, 2, 2]
    assert phones[-2:] == ["EE", "er4"]  # 儿 takes the tone of the preceding syllable
    assert syllable_to_phones("zhi") == ("zh", "ir")
    assert syllable_to_phones("si") == ("s", "i0")
    assert syllable_to_phones("yuan") == ("y", "van")
    assert syllable_to_phones("ye") == ("y", "E")
    assert syllable_to_phones("ai") == ("AA", "ai")


def test_pause_marks_replace_every_comma():
    phones, word2ph, norm = clean_text("你好，我￥好", "zh")
    assert "," not in phones and phones.count("SP2") == 2
    assert sum(word2ph) == len(phones) and len(word2ph) == len(norm)
    assert "SP3" in clean_text("好^好", "zh")[0]


def test_cantonese_units_and_aliases():
    phones, word2ph, norm = clean_text("佢個鋤頭太短啦。", "yue")
    assert norm == "佢个锄头太短啦."
    ids = cleaned_text_to_sequence(phones)
    assert ids == [571, 498, 513, 598, 467, 599, 668, 461, 668, 369, 468, 720, 579, 361, 3]
    assert word2ph == [2] * 7 + [1]
    assert clean_text("五", "can")[0] == ["Yng", "Yg5"]
    assert clean_text("好！！", "yue")[0][-2:] == ["!", "!"]  # not collapsed


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="accepted"):
        clean_text("hi", "fr")
