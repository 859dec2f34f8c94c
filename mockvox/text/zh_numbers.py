"""Chinese verbalisation of numbers (the PaddleSpeech `zh_normalization` number rules used by GPT-SoVITS v2)."""

from __future__ import annotations

DIGITS = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
# Power of ten -> unit, largest first when splitting a number.
UNITS = {1: "十", 2: "百", 3: "千", 4: "万", 8: "亿"}


def _cardinal_parts(value: str, use_zero: bool = True) -> list[str]:
    stripped = value.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        if use_zero and len(stripped) < len(value):
            return [DIGITS["0"], DIGITS[stripped]]
        return [DIGITS[stripped]]
    power = max(p for p in UNITS if p < len(stripped))
    head, tail = value[:-power], value[-power:]
    return _cardinal_parts(head) + [UNITS[power]] + _cardinal_parts(tail)


def verbalize_cardinal(value: str) -> str:
    """`"120"` -> 一百二十; a leading 一十 is shortened to 十."""
    if not value:
        return ""
    value = value.lstrip("0")
    if not value:
        return DIGITS["0"]
    parts = _cardinal_parts(value)
    if len(parts) >= 2 and parts[0] == DIGITS["1"] and parts[1] == UNITS[1]:
        parts = parts[1:]
    return "".join(parts)


def verbalize_digit(value: str, alt_one: bool = False) -> str:
    """Read digit by digit; `alt_one` reads 1 as 幺 (phone numbers)."""
    out = "".join(DIGITS[d] for d in value)
    return out.replace("一", "幺") if alt_one else out


def num2str(value: str) -> str:
    """Cardinal with an optional decimal part: `"3.20"` -> 三点二零 (trailing zeros collapse to one)."""
    parts = value.split(".")
    if len(parts) == 1:
        integer, decimal = parts[0], ""
    elif len(parts) == 2:
        integer, decimal = parts
    else:
        raise ValueError(f"number {value!r} has more than one decimal point")
    result = verbalize_cardinal(integer)
    decimal = decimal.rstrip("0") + "0" if decimal.endswith("0") else decimal.rstrip("0")
    if decimal:
        result = (result or "零") + "点" + verbalize_digit(decimal)
    return result
