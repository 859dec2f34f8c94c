"""Re-implements GPT-SoVITS ``feature_extractor/cnhubert.py`` (+ the input scaling of ``2-get-hubert-wav32k.py``).

chinese-hubert-base through ``transformers.HubertModel``: raw 16 kHz waveform in (the ``Wav2Vec2FeatureExtractor``
normalisation is bypassed, as upstream), ``last_hidden_state`` out, 50 frames/s, 768 channels, returned [B, C, T50].
Semantic tokens (25 Hz) come from the SoVITS quantizer (``extract_latent``) applied to these features.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
FRAME_RATE = 50  # 16 kHz / 320-sample hop of the conv feature encoder
PROMPT_PAD_SECONDS = 0.6  # zeros appended to a reference before HuBERT at inference (int(32000 * 0.3) samples)
MAX_ABS = 0.95  # official dataset-prep peak target
MIX = 0.5  # official mix of peak-normalised and raw signal


def _peak_mix(wav: np.ndarray | torch.Tensor, full_scale: float):
    peak = np.abs(wav).max() if isinstance(wav, np.ndarray) else wav.abs().max()
    return wav / peak * (MAX_ABS * MIX * full_scale) + (1 - MIX) * full_scale * wav


def scale_for_hubert(wav: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Official dataset-prep HuBERT input amplitude (full scale 1145.14, i.e. about +-1100; resample 32k->16k after)."""
    return _peak_mix(wav, 1145.14)


def scale_for_wav32k(wav: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Official dataset-prep 32 kHz copy for SoVITS (int16 full scale 32768; cast to int16 when writing)."""
    return _peak_mix(wav, 32768.0)


def pad_prompt(wav16k: torch.Tensor) -> torch.Tensor:
    """Append the 0.6 s of silence GPT-SoVITS adds to a reference before extracting its prompt tokens."""
    pad = wav16k.new_zeros((*wav16k.shape[:-1], int(SAMPLE_RATE * PROMPT_PAD_SECONDS)))
    return torch.cat([wav16k, pad], dim=-1)


class HubertSSL(nn.Module):
    """HuBERT SSL feature extractor: [B, T16k] (or [T16k]) waveform -> [B, hidden, T50]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype: torch.dtype | None = None) -> HubertSSL:
        """Load a ``save_pretrained`` folder such as ``pretrained_models/chinese-hubert-base``."""
        from transformers import HubertModel

        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(
                f"no HuBERT model at {path} (expected config.json + weights from chinese-hubert-base; "
                "run `mockvox pretrained download`)"
            )
        model = HubertModel.from_pretrained(str(path))
        if dtype is not None:
            model = model.to(dtype)
        return cls(model.eval())

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @staticmethod
    def num_frames(num_samples: int) -> int:
        """Frames produced for ``num_samples`` at 16 kHz (conv stack: 400-sample receptive field, 320 hop)."""
        return max(0, (num_samples - 400) // 320 + 1)

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        if wav16k.dim() == 1:
            wav16k = wav16k.unsqueeze(0)
        dtype = next(self.model.parameters()).dtype
        feats = self.model(wav16k.to(dtype)).last_hidden_state  # [B, T50, C]
        if dtype != torch.float32 and not feats.isfinite().all():
            feats = self.model.float()(wav16k.float()).last_hidden_state  # official: retry NaN outputs in fp32
            self.model.to(dtype)
        return feats.transpose(1, 2)
