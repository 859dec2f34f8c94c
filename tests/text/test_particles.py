"""Rules checked against the official GPT-SoVITS v2 frontend: Cantonese particles, 幺 in digit strings, 一 merges.

Expected phones are what the official `cantonese.py` / `chinese2.py` (pypinyin branch) give for these inputs.
"""

import pytest

from mockvox.text import clean_text
from mockvox.text.tone_sandhi import pre_merge_for_modify
from mockvox.text.zh_norm import to_simplified

# particle -> phones of its ToJyutping reading (wo3 -> initial "w" + toned final "o3", each prefixed with Y)
PARTICLES = {
    "喎": ["Yw", "Yo3"],
    "囉": ["Yl", "Yo1"],
    "啦": ["Yl", "Yaa1"],
    "咩": ["Ym", "Ye1"],
    "嘅": ["Yg", "Ye3"],
    "喇": ["Yl", "Yaa3"],
    "噃": ["Yb", "Yo3"],
    "嚟": ["Yl", "Yai4"],
    "啫": ["Yz", "Ye1"],
    "咋": ["Yz", "Yaa3"],
}


@pytest.mark.parametrize(("particle", "phones"), PARTICLES.items())
def test_cantonese_sentence_final_particle_keeps_its_phones(particle, phones):
    assert clean_text(f"係{particle}。", "yue")[0] == ["Yh", "Yai6", *phones, "."]
    assert clean_text(f"好{particle}？", "yue")[0] == ["Yh", "You2", *phones, "?"]
    assert clean_text(f"佢話{particle}", "yue")[0] == ["Yk", "Yeoi5", "Yw", "Yaa6", *phones]


def test_cantonese_particle_outside_the_kept_block_is_deleted():
    # 㗎 (U+35CE) lies outside U+4E00-U+9FA5, so the official punctuation filter removes it.
    assert clean_text("好貴㗎。", "yue") == (["Yh", "You2", "Ygw", "Yai3", "."], [2, 2, 1], "好贵.")


def test_simplification_is_the_one_to_one_table():
    # OpenCC t2s would turn 喎 嗰 噚 into 㖞 𠮶 㖊 (later deleted) and 乾 into 干; the official table keeps them.
    assert to_simplified("佢話唔嚟喎，嗰度琴噚乾淨") == "佢话唔嚟喎，嗰度琴噚乾净"
    phones, _, norm = clean_text("嗰個人琴噚嚟咗。", "yue")
    assert norm == "嗰个人琴噚嚟咗."
    assert phones[:2] == ["Yg", "Yo2"] and phones[6:10] == ["Yk", "Yam4", "Yc", "Yam4"]


@pytest.mark.parametrize(
    ("text", "norm", "yao"),
    [
        ("请拨打110。", "请拨打幺幺零.", 2),
        ("我的电话是13811112222。", "我的电话是幺三八幺幺幺幺二二二二.", 5),
    ],
)
def test_phone_number_yao_keeps_tone_one(text, norm, yao):
    phones, _, got = clean_text(text, "zh")
    assert got == norm
    finals = [phones[i + 1] for i, p in enumerate(phones[:-1]) if p == "y" and phones[i + 1].startswith("ao")]
    assert finals == ["ao1"] * yao


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("奶奶在家。", "n ai3 n ai5 z ai4 j ia1 ."),
        ("你试试。", "n i3 sh ir4 sh ir5 ."),
        ("我们看看吧。", "w o3 m en5 k an4 k an5 b a5 ."),
        ("你想想。", "n i3 x iang2 x iang3 ."),  # 想想 is on the official no-neutral-tone list
    ],
)
def test_reduplication_neutral_tone(text, phones):
    assert clean_text(text, "zh")[0] == phones.split()


@pytest.mark.parametrize(
    ("seg", "merged"),
    [
        ([("听", "v"), ("一", "m"), ("听", "v")], [["听一听", "v"]]),
        ([("看", "v"), ("一", "m"), ("看", "n")], [["看", "v"], ["一看", "m"]]),
        (
            [("看", "v"), ("看", "v"), ("一", "m"), ("看", "n"), ("看", "n")],
            [["看看", "v"], ["一看", "m"], ["看", "n"]],
        ),
        (
            [("好", "a"), ("一", "m"), ("看", "v"), ("看", "n"), ("一", "m"), ("看", "v")],
            [["好", "a"], ["一看", "m"], ["看", "n"], ["一看", "m"]],
        ),
    ],
)
def test_merge_yi_needs_the_same_verb_on_both_sides(seg, merged):
    assert pre_merge_for_modify(seg) == merged
