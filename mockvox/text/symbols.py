"""The GPT-SoVITS v2 phone table (732 symbols; a phone id is its index).

Corresponds to `GPT_SoVITS/text/symbols2.py::symbols`: the 322 sorted v1 symbols, `[` and `]`, the 31
Korean symbols, then the 379 `Y`-prefixed Jyutping units. Stored as data in `symbols_v2.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

SYMBOLS: list[str] = json.loads((Path(__file__).with_name("symbols_v2.json")).read_text(encoding="utf-8"))
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
SYMBOL_SET: frozenset[str] = frozenset(SYMBOLS)

PAD = "_"
UNK = "UNK"
# Punctuation phones shared by the Chinese, Cantonese and English frontends.
PUNCTUATION: tuple[str, ...] = ("!", "?", "…", ",", ".", "-")


def cleaned_text_to_sequence(phones: list[str]) -> list[int]:
    """Map phone symbols to v2 ids; a phone outside the table maps to `UNK`."""
    unk = SYMBOL_TO_ID[UNK]
    return [SYMBOL_TO_ID.get(p, unk) for p in phones]


def sequence_to_phones(ids: list[int]) -> list[str]:
    """Inverse of :func:`cleaned_text_to_sequence`."""
    return [SYMBOLS[i] for i in ids]
