"""The SoVITS linear spectrogram settings (GPT-SoVITS ``s2.json`` ``data``), one typed holder passed down from config.

The values live in ``conf/model/spectrogram/`` (``cfg.model.spectrogram``); :data:`OFFICIAL` is read from its
``official`` option, the settings the official weights were trained with, for callers without a config. Kept free of
torch so the dataset tools can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from mockvox.config import read_option


@dataclass(frozen=True)
class Spectrogram:
    """Waveform rate and STFT of the SoVITS input spectrogram (and of the v2 mel loss)."""

    sampling_rate: int
    filter_length: int  # n_fft
    hop_length: int
    win_length: int

    @classmethod
    def from_mapping(cls, values: Spectrogram | Mapping | None) -> Spectrogram:
        """From ``cfg.model.spectrogram``, an s2.json ``data`` dict or ``mockvox.yaml`` (other keys ignored).

        None gives :data:`OFFICIAL` (configs and voices written before the settings were recorded).
        """
        if values is None:
            return OFFICIAL
        if isinstance(values, Spectrogram):
            return values
        return cls(**{f.name: int(values[f.name]) for f in fields(cls)})

    def as_s2_data(self) -> dict[str, int]:
        """The s2.json ``data`` entries."""
        return asdict(self)


OFFICIAL = Spectrogram.from_mapping(read_option("model/spectrogram", "official"))
