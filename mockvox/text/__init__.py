"""Text frontend: symbols, normalisers, per-language G2P, language segmentation (GPT-SoVITS v2 compatible).

`clean_text(text, language)` is the per-language entry point (zh, en, ja, ko, yue/can);
`phones_for_mode(text, mode)` segments mixed-language text for a synthesis language mode.
"""

from mockvox.text.cleaner import LANGUAGES, clean_text
from mockvox.text.symbols import SYMBOLS, cleaned_text_to_sequence

__all__ = ["LANGUAGES", "SYMBOLS", "clean_text", "cleaned_text_to_sequence", "phones_for_mode"]


def __getattr__(name: str):
    # Imported lazily: segmentation pulls in the language detector.
    if name == "phones_for_mode":
        from mockvox.text.modes import phones_for_mode

        return phones_for_mode
    raise AttributeError(name)
