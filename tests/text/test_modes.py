"""Language modes, mixed-text segmentation and the short-input retry."""

import pytest

from mockvox.text import phones_for_mode
from mockvox.text.langseg import full_cjk, full_en, get_texts, split_jako
from mockvox.text.modes import MODE_ALIASES, MODES, split_by_mode

MIXED = "我爱Python和日本語のテキスト"


def test_segmentation_rules():
    assert full_en("Hello, world 42!") and not full_en("42") and not full_en("你好")
    assert full_cjk("漢字abcかな。") == "漢字。"
    assert split_jako("ja", {"lang": "zh", "text": "日本語のテキスト"}) == [
        {"lang": "zh", "text": "日本語"},
        {"lang": "ja", "text": "のテキスト"},
    ]
    assert [s["lang"] for s in get_texts("我喜欢Python编程")] == ["zh", "en", "zh"]
    assert [s["lang"] for s in get_texts("안녕하세요 Hello")] == ["ko", "en"]


@pytest.mark.parametrize(
    ("mode", "langs"),
    [
        ("all_zh", ["zh", "en", "zh"]),
        ("zh", ["zh", "en", "zh"]),
        ("en", ["en"]),
        ("all_ja", ["ja", "en", "ja"]),
        ("ja", ["ja", "en", "ja"]),
        ("all_ko", ["ko", "en", "ko"]),
        ("ko", ["ko", "en", "ko"]),
        ("all_yue", ["yue", "en", "yue"]),
        ("yue", ["yue", "en", "yue"]),
        ("auto", ["zh", "en", "ja"]),
        ("auto_yue", ["yue", "en", "ja"]),
        ("all_can", ["yue", "en", "yue"]),
        ("can", ["yue", "en", "yue"]),
        ("auto_can", ["yue", "en", "ja"]),
    ],
)
def test_every_mode(mode, langs):
    assert [lang for lang, _ in split_by_mode(MIXED, mode)] == langs
    phones, word2ph, norm = phones_for_mode(MIXED, mode)
    assert word2ph is None and phones and norm
    assert ["P", "AY1", "TH", "AA0", "N"] == phones[phones.index("P") : phones.index("P") + 5]


def test_mode_phones_per_language():
    assert phones_for_mode(MIXED, "zh")[0][:4] == ["w", "o3", "AA", "ai4"]
    assert phones_for_mode(MIXED, "yue")[0][:4] == ["Yng", "Yo5", "Yoi", "Yi3"]
    assert "UNK" in phones_for_mode(MIXED, "auto")[0]  # the Japanese run keeps its "#" -> UNK
    assert phones_for_mode("我们今天去学校", "zh")[2] == "我们今天去学校"


def test_short_input_is_retried_with_a_leading_dot():
    phones, _, norm = phones_for_mode("好", "zh")
    assert phones == [".", "h", "ao3"] and norm == ".好"


def test_unknown_mode_is_a_clear_error():
    assert set(MODE_ALIASES.values()) <= set(MODES)
    with pytest.raises(ValueError, match="accepted"):
        phones_for_mode("hi", "fr")


def test_empty_and_punctuation_only_input():
    assert phones_for_mode("", "auto") == ([","], None, " ")  # "." retry -> punctuation run read as English " "
    assert phones_for_mode("", "zh") == (["."], None, ".")
    assert get_texts("") == []
