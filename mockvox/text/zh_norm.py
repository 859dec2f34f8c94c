"""Chinese text normalisation: the PaddleSpeech `TextNormalizer` rules as used by GPT-SoVITS v2.

Corresponds to `GPT_SoVITS/text/zh_normalization/` (dates, times, ranges, temperatures, units, arithmetic,
fractions, percentages, phone numbers, plain numbers). Traditional -> simplified is PaddleSpeech's
one-to-one character table (no phrase conversion); a character the table does not change, such as the
Cantonese particles 喎 嗰 噚 (OpenCC would turn them into characters outside U+4E00-U+9FA5), is kept.
"""

from __future__ import annotations

import re
from pathlib import Path

from mockvox.text.zh_numbers import DIGITS, num2str, verbalize_cardinal, verbalize_digit

_SENTENCE_SPLIT = re.compile(r"([：、，；。？！,;?!][”’]?)")
_SPLIT_DROP = re.compile(r"[——《》【】<>{}()（）#&@“”^_|\\]")
_POST_DROP = re.compile(r"[-——《》【】<=>{}()（）#&@“”^_|\\]")

_F2H = {0xFF10 + i: 0x30 + i for i in range(10)}
_F2H.update({0xFF21 + i: 0x41 + i for i in range(26)})
_F2H.update({0xFF41 + i: 0x61 + i for i in range(26)})
_F2H[0x3000] = 0x20

# --- dates and times -------------------------------------------------------------------------------
RE_DATE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
RE_DATE2 = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_HM = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
RE_TIME = re.compile(_HM)
RE_TIME_RANGE = re.compile(_HM + r"(~|-)" + _HM)


def _time_num(num: str) -> str:
    out = num2str(num.lstrip("0"))
    return DIGITS["0"] + out if num.startswith("0") else out


def _clock(hour: str, minute: str, second: str | None, half_check: str) -> str:
    out = f"{num2str(hour)}点"
    if minute.lstrip("0"):
        out += "半" if int(half_check) == 30 else f"{_time_num(minute)}分"
    if second and second.lstrip("0"):
        out += f"{_time_num(second)}秒"
    return out


def _replace_time(m: re.Match) -> str:
    out = _clock(m.group(1), m.group(2), m.group(4), m.group(2))
    if len(m.groups()) > 5:
        # The official range rule tests the *first* minute for 半 in the second clock too.
        out += "至" + _clock(m.group(6), m.group(7), m.group(9), m.group(2))
    return out


def _replace_date(m: re.Match) -> str:
    out = f"{verbalize_digit(m.group(1))}年" if m.group(1) else ""
    if m.group(3):
        out += f"{verbalize_cardinal(m.group(3))}月"
    if m.group(5):
        out += f"{verbalize_cardinal(m.group(5))}{m.group(9)}"
    return out


def _replace_date2(m: re.Match) -> str:
    return f"{verbalize_digit(m.group(1))}年{verbalize_cardinal(m.group(3))}月{verbalize_cardinal(m.group(4))}日"


# --- quantities ------------------------------------------------------------------------------------
_UNIT_RE = r"(%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s)"
_NUM_RE = r"((-?)((\d+)(\.\d+)?)|(\.(\d+)))"
RE_TO_RANGE = re.compile(_NUM_RE + _UNIT_RE + r"[~]" + _NUM_RE + _UNIT_RE)
RE_TEMPERATURE = re.compile(r"(-?)(\d+(\.\d+)?)(°C|℃|度|摄氏度)")
MEASURES = {
    "cm2": "平方厘米", "cm²": "平方厘米", "cm3": "立方厘米", "cm³": "立方厘米", "cm": "厘米", "db": "分贝",
    "ds": "毫秒", "kg": "千克", "km": "千米", "m2": "平方米", "m²": "平方米", "m³": "立方米", "m3": "立方米",
    "ml": "毫升", "m": "米", "mm": "毫米", "s": "秒",
}  # fmt: skip
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_SUP}]*)|(\.\d+[{_SUP}]*)|([A-Za-z][{_SUP}]*))"
RE_ASMD = re.compile(_OPERAND + r"([\+\-\×÷=])" + _OPERAND)
_ASMD = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
RE_POWER = re.compile(rf"[{_SUP}]+")
_POWER = dict(zip(_SUP, "0123456789xyn", strict=True))


def _replace_temperature(m: re.Match) -> str:
    unit = "摄氏度" if m.group(4) == "摄氏度" else "度"
    return f"{'零下' if m.group(1) else ''}{num2str(m.group(2))}{unit}"


def _replace_measure(text: str) -> str:
    for notation, word in MEASURES.items():
        text = text.replace(notation, word)
    return text


# --- numbers ---------------------------------------------------------------------------------------
RE_FRAC = re.compile(r"(-?)(\d+)/(\d+)")
RE_PERCENTAGE = re.compile(r"(-?)(\d+(\.\d+)?)%")
RE_MOBILE_PHONE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
RE_TELEPHONE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
RE_NATIONAL_UNIFORM_NUMBER = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
RE_RANGE = re.compile(r"(?<![\d\+\-\×÷=])((-?)((\d+)(\.\d+)?))[-~]((-?)((\d+)(\.\d+)?))(?![\d\+\-\×÷=])")
RE_INTEGER = re.compile(r"(-)(\d+)")
RE_DECIMAL_NUM = re.compile(r"(-?)((\d+)(\.\d+))|(\.(\d+))")
RE_DEFAULT_NUM = re.compile(r"\d{3}\d*")
RE_NUMBER = re.compile(r"(-?)((\d+)(\.\d+)?)|(\.(\d+))")
_QUANTIFIERS = (
    "(处|台|架|枚|趟|幅|平|方|堵|间|床|株|批|项|例|列|篇|栋|注|亩|封|艘|把|目|套|段|人|所|朵|匹|张|座|回|场|尾|条|个|首|阙|阵|网|"
    "炮|顶|丘|棵|只|支|袭|辆|挑|担|颗|壳|窠|曲|墙|群|腔|砣|座|客|贯|扎|捆|刀|令|打|手|罗|坡|山|岭|江|溪|钟|队|单|双|对|出|口|"
    "头|脚|板|跳|枝|件|贴|针|线|管|名|位|身|堂|课|本|页|家|户|层|丝|毫|厘|分|钱|两|斤|担|铢|石|钧|锱|忽|(千|毫|微)克|毫|厘|"
    "(公)分|分|寸|尺|丈|里|寻|常|铺|程|(千|分|厘|毫|微)米|米|撮|勺|合|升|斗|石|盘|碗|碟|叠|桶|笼|盆|盒|杯|钟|斛|锅|簋|篮|盘|"
    "桶|罐|瓶|壶|卮|盏|箩|箱|煲|啖|袋|钵|年|月|日|季|刻|时|周|天|秒|分|小时|旬|纪|岁|世|更|夜|春|夏|秋|冬|代|伏|辈|丸|泡|粒|"
    "颗|幢|堆|条|根|支|道|面|片|张|颗|块|元|(亿|千万|百万|万|千|百)|(亿|千万|百万|万|千|百|美|)元|"
    "(亿|千万|百万|万|千|百|十|)吨|(亿|千万|百万|万|千|百|)块|角|毛|分)"
)
RE_POSITIVE_QUANTIFIERS = re.compile(r"(\d+)([多余几\+])?" + _QUANTIFIERS)


def _sign(s: str, word: str = "负") -> str:
    return word if s else ""


def _replace_frac(m: re.Match) -> str:
    return f"{_sign(m.group(1))}{num2str(m.group(3))}分之{num2str(m.group(2))}"


def _replace_percentage(m: re.Match) -> str:
    return f"{_sign(m.group(1))}百分之{num2str(m.group(2))}"


def _phone_digits(text: str, sep: str | None) -> str:
    parts = text.strip("+").split() if sep is None else text.split(sep)
    return "，".join(verbalize_digit(p, alt_one=True) for p in parts)


def _replace_number(m: re.Match) -> str:
    if m.group(5):
        return num2str(m.group(5))
    return f"{_sign(m.group(1))}{num2str(m.group(2))}"


def _replace_range(m: re.Match) -> str:
    first = RE_NUMBER.sub(_replace_number, m.group(1))
    second = RE_NUMBER.sub(_replace_number, m.group(6))
    return f"{first}到{second}"


def _replace_quantifier(m: re.Match) -> str:
    extra = "多" if m.group(2) == "+" else (m.group(2) or "")
    number = num2str(m.group(1))
    return f"{'两' if number == '二' else number}{extra}{m.group(3)}"


_GREEK = [
    ("α", "阿尔法"), ("β", "贝塔"), ("γ", "伽玛"), ("Γ", "伽玛"), ("δ", "德尔塔"), ("Δ", "德尔塔"), ("ε", "艾普西龙"),
    ("ζ", "捷塔"), ("η", "依塔"), ("θ", "西塔"), ("Θ", "西塔"), ("ι", "艾欧塔"), ("κ", "喀帕"), ("λ", "拉姆达"),
    ("Λ", "拉姆达"), ("μ", "缪"), ("ν", "拗"), ("ξ", "克西"), ("Ξ", "克西"), ("ο", "欧米克伦"),
    ("π", "派"), ("Π", "派"), ("ρ", "肉"), ("ς", "西格玛"), ("Σ", "西格玛"), ("σ", "西格玛"), ("τ", "套"),
    ("υ", "宇普西龙"), ("φ", "服艾"), ("Φ", "服艾"), ("χ", "器"), ("ψ", "普赛"), ("Ψ", "普赛"), ("ω", "欧米伽"),
    ("Ω", "欧米伽"),
]  # fmt: skip
_POST = [("/", "每")] + [(c, w) for c, w in zip("①②③④⑤⑥⑦⑧⑨⑩", "一二三四五六七八九十", strict=True)] + _GREEK
_POST += [("+", "加"), ("-", "减"), ("×", "乘"), ("÷", "除"), ("=", "等")]


# The non-identity (traditional, simplified) pairs of `zh_normalization/char_convert.py` (the last listing of a
# traditional character wins), concatenated in zh_t2s.txt; every other character is left as it is.
_T2S_PAIRS = "".join((Path(__file__).with_name("zh_t2s.txt")).read_text(encoding="utf-8").split())
_T2S = str.maketrans(_T2S_PAIRS[0::2], _T2S_PAIRS[1::2])


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese, one character at a time."""
    return text.translate(_T2S)


def split_sentences(text: str) -> list[str]:
    """Drop spaces and bracket-like marks, then cut after sentence punctuation."""
    text = _SPLIT_DROP.sub("", text.replace(" ", ""))
    text = _SENTENCE_SPLIT.sub(r"\1\n", text).strip()
    return [s.strip() for s in re.split(r"\n+", text)]


def normalize_sentence(s: str) -> str:
    """Verbalise the non-standard words of one sentence."""
    s = to_simplified(s).translate(_F2H)
    s = RE_DATE.sub(_replace_date, s)
    s = RE_DATE2.sub(_replace_date2, s)
    s = RE_TIME_RANGE.sub(_replace_time, s)
    s = RE_TIME.sub(_replace_time, s)
    s = RE_TO_RANGE.sub(lambda m: m.group(0).replace("~", "至"), s)
    s = RE_TEMPERATURE.sub(_replace_temperature, s)
    s = _replace_measure(s)
    while RE_ASMD.search(s):
        s = RE_ASMD.sub(lambda m: m.group(1) + _ASMD[m.group(8)] + m.group(9), s)
    s = RE_POWER.sub(lambda m: "的" + "".join(_POWER[c] for c in m.group(0)) + "次方", s)
    s = RE_FRAC.sub(_replace_frac, s)
    s = RE_PERCENTAGE.sub(_replace_percentage, s)
    s = RE_MOBILE_PHONE.sub(lambda m: _phone_digits(m.group(0), None), s)
    s = RE_TELEPHONE.sub(lambda m: _phone_digits(m.group(0), "-"), s)
    s = RE_NATIONAL_UNIFORM_NUMBER.sub(lambda m: _phone_digits(m.group(0), "-"), s)
    s = RE_RANGE.sub(_replace_range, s)
    s = RE_INTEGER.sub(lambda m: f"负{num2str(m.group(2))}", s)
    s = RE_DECIMAL_NUM.sub(_replace_number, s)
    s = RE_POSITIVE_QUANTIFIERS.sub(_replace_quantifier, s)
    s = RE_DEFAULT_NUM.sub(lambda m: verbalize_digit(m.group(0), alt_one=True), s)
    s = RE_NUMBER.sub(_replace_number, s)
    for src, dst in _POST:
        s = s.replace(src, dst)
    return _POST_DROP.sub("", s)


def normalize(text: str) -> list[str]:
    """Split `text` into sentences and verbalise each (the `TextNormalizer.normalize` contract)."""
    return [normalize_sentence(s) for s in split_sentences(text)]
