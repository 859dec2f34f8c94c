"""Text splitting methods cut0-cut5 and their post-processing."""

import pytest

from mockvox.text.split import METHODS, cut1, cut2, cut5, merge_short, split_big_text, split_text

TEXT = "今天天气很好。我们去公园吧！你觉得怎么样？好的，我同意。价格是3.5元。"


def test_cut_methods():
    assert split_text(TEXT, "cut0") == [TEXT]
    assert split_text(TEXT, "cut3") == ["今天天气很好。", "我们去公园吧！你觉得怎么样？好的，我同意。", "价格是3.5元。"]
    assert split_text("One. Two is 2.5 now. Three.", "cut4", "en") == ["One Two is 2.5 now.", " Three."]
    assert split_text(TEXT, "cut5") == [  # decimal point kept; "好的，" is merged (< 5 characters)
        "今天天气很好。",
        "我们去公园吧！",
        "你觉得怎么样？",
        "好的，我同意。",
        "价格是3.5元。",
    ]


def test_cut1_groups_four_sentences_with_the_remainder_in_the_last_piece():
    text = "一。二。三。四。五。六。七。八。九。"
    assert cut1(text).split("\n") == ["一。二。三。四。", "五。六。七。八。九。"]
    assert cut1("一。二。") == "一。二。"


def test_cut2_and_helpers():
    long = "这是一个比较长的句子，" * 6
    pieces = cut2(long).split("\n")
    assert "".join(pieces) == long and len(pieces) == 1  # a short tail joins the previous piece
    assert cut5("a,b").split("\n") == ["a,", "b"]
    assert merge_short(["一", "二", "三四五六", "七"], 5) == ["一二三四五六七"]
    assert [len(p) for p in split_big_text("句子。" * 300)] == [510, 390]


def test_post_processing():
    assert split_text("你好", "cut0") == ["。你好。"]  # short first sentence gets a leading mark, final mark added
    assert split_text("Hi", "cut0", "en") == [".Hi."]
    with pytest.raises(ValueError, match="nothing to read"):
        split_text("……", "cut5")
    with pytest.raises(ValueError, match="accepted"):
        split_text(TEXT, "cut9")
    assert set(METHODS) == {"cut0", "cut1", "cut2", "cut3", "cut4", "cut5"}
