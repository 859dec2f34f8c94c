"""English text normalisation: ordinals, arithmetic, negatives, times, units, currency, decimals, fractions, numbers.

Corresponds to GPT-SoVITS v2 `text/en_normalization/expend.py` (same rules and order; numbers spelled by inflect).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MEASUREMENTS = {
    "m": ("meter", "meters"), "km": ("kilometer", "kilometers"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"), "L": ("liter", "liters"), "tbsp": ("tablespoon", "tablespoons"),
    "tsp": ("teaspoon", "teaspoons"), "h": ("hour", "hours"), "min": ("minute", "minutes"), "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"), "°F": ("degree fahrenheit", "degrees fahrenheit"),
}  # fmt: skip

_ORDINAL_NUMBER = re.compile(r"\b([0-9]+)\. ")
_COMMA_NUMBER = re.compile(r"([0-9][0-9\,]+[0-9])")
_TIME = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_MEASUREMENT = re.compile(r"\b([0-9]+(\.[0-9]+)?(m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F))\b")
_POUNDS_START = re.compile(r"£([0-9\.\,]*[0-9]+)")
_POUNDS_END = re.compile(r"([0-9\.\,]*[0-9]+)£")
_DOLLARS_START = re.compile(r"\$([0-9\.\,]*[0-9]+)")
_DOLLARS_END = re.compile(r"([(0-9\.\,]*[0-9]+)\$")
_DECIMAL = re.compile(r"([0-9]+\.\s*[0-9]+)")
_FRACTION = re.compile(r"([0-9]+/[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER = re.compile(r"[0-9]+")
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_SUP}]*)|(\.\d+[{_SUP}]*)|([A-Za-z][{_SUP}]*))"
_ASMD = re.compile(_OPERAND + r"\s+([\+\-\×÷=])\s+" + _OPERAND)
_ASMD_WORDS = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}
_NEGATIVE = re.compile(r"(?:^|\s+)(-)(\d+)")


@lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


def _words(n, **kw) -> str:
    return _inflect().number_to_words(n, **kw)


def _expand_time(m: re.Match) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    if minutes == 0:
        return f"{_words(hours)} o'clock {period}"
    return f"{_words(hours)} {_words(minutes)} {period}"


def _expand_measurement(m: re.Match) -> str:
    unit = m.group(3)
    num = int(m.group(1).replace(unit, "").replace(".", ""))
    plural = not (m.group(2) is None and num == 1)
    return m.group(1).replace(unit, " " + MEASUREMENTS[unit][int(plural)])


def _money(amount: str, units: tuple[str, str, str, str]) -> str:
    one, many, sub_one, sub_many = units
    parts = amount.split(".")
    if len(parts) > 2:
        return f"{amount} {many}"
    whole = int(parts[0]) if parts[0] else 0
    cents = int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
    whole_txt = f"{whole} {one if whole == 1 else many}"
    cents_txt = f"{cents} {sub_one if cents == 1 else sub_many}"
    if whole and cents:
        return f"{whole_txt} and {cents_txt}"
    if whole:
        return whole_txt
    if cents:
        return cents_txt
    return f"zero {many}"


def _expand_decimal(m: re.Match) -> str:
    integer, decimals = m.group(1).split(".")[:2]
    return integer + " point " + " ".join(decimals)


def _expand_fraction(m: re.Match) -> str:
    numerator, denominator = map(int, m.group(0).split("/"))
    head = _words(numerator)
    if denominator == 2:
        return f"{head} {'half' if numerator == 1 else 'halves'}"
    if denominator == 1:
        return head
    tail = _inflect().ordinal(_words(denominator))
    return f"{head} {tail}{'s' if numerator > 1 else ''}"


def _expand_number(m: re.Match) -> str:
    num = int(m.group(0))
    if 1000 < num < 3000:
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + _words(num % 100)
        if num % 100 == 0:
            return _words(num // 100) + " hundred"
        return _words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return _words(num, andword="")


def normalize(text: str) -> str:
    """Spell out numbers and symbols, keep only `A-Za-z'.,?!-` and spaces, split capital runs into letters."""
    text = _ORDINAL_NUMBER.sub(lambda m: _inflect().ordinal(m.group(1)) + ", ", text)
    while _ASMD.search(text):
        text = _ASMD.sub(lambda m: m.group(1) + _ASMD_WORDS[m.group(8)] + m.group(9), text)
    text = _NEGATIVE.sub(lambda m: f"negative {m.group(2)}", text)
    text = _COMMA_NUMBER.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME.sub(_expand_time, text)
    text = _MEASUREMENT.sub(_expand_measurement, text)
    pounds = ("pound", "pounds", "penny", "pence")
    dollars = ("dollar", "dollars", "cent", "cents")
    text = _POUNDS_START.sub(lambda m: _money(m.group(1), pounds), text)
    text = _POUNDS_END.sub(lambda m: _money(m.group(1), pounds), text)
    text = _DOLLARS_START.sub(lambda m: _money(m.group(1), dollars), text)
    text = _DOLLARS_END.sub(lambda m: _money(m.group(1), dollars), text)
    text = _DECIMAL.sub(_expand_decimal, text)
    text = _FRACTION.sub(_expand_fraction, text)
    text = _ORDINAL.sub(lambda m: _words(m.group(0)), text)
    text = _NUMBER.sub(_expand_number, text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = re.sub(r"[^ A-Za-z'.,?!\-]", "", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    return re.sub(r"(?<!^)(?<![\s])([A-Z])", r" \1", text)
