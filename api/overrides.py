"""Training overrides a client may send: typed values from an allow-list, written back by the service.

A client's ``key=value`` never reaches Hydra as the client wrote it. The key must be one the server allows; the value
is parsed as that key's type (int or float in a range, bool, one of a few choices, or null where allowed) and the
override handed to the config is rebuilt from the parsed value. So no text a client sends can be an interpolation
(``${oc.env:...}``), a resolver call, a list or a group change the allow-list does not name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_INT = re.compile(r"^[+-]?\d{1,19}$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class OverrideError(ValueError):
    """An override the server does not take; the message names it and what is accepted."""


@dataclass(frozen=True)
class Allowed:
    """One overridable key: ``type`` int | float | bool | choice, a closed range or choices, and ``null``."""

    key: str
    type: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    null: bool = False

    def accepted(self) -> str:
        if self.type == "choice":
            what = "one of " + ", ".join(self.choices)
        elif self.type == "bool":
            what = "true or false"
        else:
            kind = "an integer" if self.type == "int" else "a number"
            what = f"{kind} in [{_num(self.min, '-inf')}, {_num(self.max, 'inf')}]"
        return what + (" or null" if self.null else "")

    def parse(self, raw: object) -> str:
        """The override's value as the service writes it (canonical text of the parsed value)."""
        text = raw if isinstance(raw, str) else _json_scalar(raw)
        text = text.strip()
        if self.null and text.lower() in ("null", "none", "~"):
            return "null"
        if self.type == "bool" and text.lower() in _TRUE + _FALSE:
            return "true" if text.lower() in _TRUE else "false"
        if self.type == "choice" and text in self.choices:
            return text
        if self.type == "int" and _INT.fullmatch(text) and self._in_range(int(text)):
            return str(int(text))
        if self.type == "float" and _FLOAT.fullmatch(text) and self._in_range(float(text)):
            return repr(float(text))
        raise OverrideError(f"override {self.key}: expected {self.accepted()}")

    def _in_range(self, value: float) -> bool:
        low, high = -math.inf if self.min is None else self.min, math.inf if self.max is None else self.max
        return math.isfinite(value) and low <= value <= high


def _num(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else str(int(value)) if float(value).is_integer() else f"{value:g}"


def _json_scalar(value: object) -> str:
    """A JSON value given for an override (``{"seed": 3}``): scalars as their text, anything else refused."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise OverrideError("override values must be numbers, booleans, strings or null")


def allow_list(spec: Mapping[str, Mapping] | Iterable[str]) -> dict[str, Allowed]:
    """``conf/api.yaml: train_allow`` as :class:`Allowed` entries (a plain list of keys: nothing is allowed, since a
    key without a type could take any text)."""
    if not isinstance(spec, Mapping):
        return {}
    out = {}
    for key, entry in spec.items():
        entry = dict(entry or {})
        choices = tuple(str(c) for c in entry.pop("choices", ()) or ())
        out[str(key)] = Allowed(str(key), str(entry.pop("type")), choices=choices, **entry)
    return out


def checked_overrides(given: object, allowed: Mapping[str, Allowed]) -> list[str]:
    """``given`` (a list of ``"key=value"`` strings or a ``{key: value}`` object) as the overrides the service writes.

    Raises:
        OverrideError: a key not allowed, a value not of its type or out of its range, a key given twice.
    """
    if isinstance(given, Mapping):
        pairs = [(str(k), v) for k, v in given.items()]
    elif isinstance(given, list) and all(isinstance(i, str) for i in given):
        pairs = [tuple(i.split("=", 1)) if "=" in i else (i, None) for i in given]
    else:
        raise OverrideError('overrides must be a JSON list of "key=value" strings or a JSON object {key: value}')
    out, seen = [], set()
    for key, value in pairs:
        entry = allowed.get(key)
        if entry is None or value is None:
            names = ", ".join(allowed) or "none"
            raise OverrideError(f"override {key[:80]!r} is not allowed (key=value); allowed keys: {names}")
        if key in seen:
            raise OverrideError(f"override {key} is given twice")
        seen.add(key)
        out.append(f"{key}={entry.parse(value)}")
    return out
