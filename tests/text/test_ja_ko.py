"""Japanese and Korean frontends."""

import os

from mockvox.text import clean_text
from mockvox.text.japanese import DEBIAN_DICT_DIR, g2p_prosody
from mockvox.text.korean import divide_hangul, fix_g2pk2_error, latin_to_hangul


def test_japanese_prosody_marks():
    phones, word2ph, norm = clean_text("こんにちは。", "ja")
    assert phones == ["k", "o", "[", "N", "n", "i", "ch", "i", "w", "a", "."]
    assert word2ph is None and norm == "こんにちは。"
    raw = g2p_prosody("こんにちは")
    assert raw[0] == "^" and raw[-1] == "$"


def test_japanese_boundaries_become_unk_and_questions_keep_their_mark():
    phones = clean_text("学校に行った？", "ja")[0]
    assert "UNK" in phones  # "#" accent-phrase boundary is not in the v2 table
    assert "cl" in phones and phones[-1] == "?"
    assert clean_text("3.14", "ja")[0][:5] == ["s", "a", "[", "N", "."]  # the dot splits the number


def test_japanese_dictionary_default():
    if os.path.isdir(DEBIAN_DICT_DIR) and "OPEN_JTALK_DICT_DIR" not in os.environ:
        clean_text("はい", "ja")
        assert os.environ["OPEN_JTALK_DICT_DIR"] == DEBIAN_DICT_DIR


def test_korean_jamo_space_and_unknown_marks():
    phones, word2ph, norm = clean_text("안녕하세요, 3개 주세요", "ko")
    assert phones[:5] == ["ㅇ", "ㅏ", "ㄴ", "ㄴ", "ㅣ"]  # ㅕ split into ㅣㅓ
    assert "空" in phones and phones[-1] == "."  # space, final "." after a jamo
    assert phones[16:20] == ["ㅅ", "ㅔ", "ㄱ", "ㅐ"]  # 3개 -> 세개
    assert clean_text("좋아요;", "ko")[0][-1] == "停"


def test_korean_helpers():
    assert latin_to_hangul("AI") == "에이아이"
    assert divide_hangul("와") == "ㅇㅗㅏ"
    assert fix_g2pk2_error("ㅇㅡㄹ ㄹㅏ") == "ㅇㅡㄹ ㄴㅏ"
