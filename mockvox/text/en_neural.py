"""The g2p_en neural grapheme-to-phoneme predictor (GRU encoder-decoder, greedy decoding) in numpy.

Re-implements `g2p_en.G2p.predict` on the package's own `checkpoint20.npz`, without importing `g2p_en`
(whose import downloads NLTK data).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + (
    "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 ER0 ER1 ER2 EY0 "
    "EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 "
    "UW1 UW2 V W Y Z ZH"
).split()
_G2IDX = {g: i for i, g in enumerate(GRAPHEMES)}
_START, _END, _MAX_STEPS = 2, 3, 20


def package_dir() -> Path:
    """Folder of the installed `g2p_en` package (located without executing it)."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("g2p_en is not installed: pip install g2p_en==2.1.0")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def _weights() -> dict[str, np.ndarray]:
    with np.load(package_dir() / "checkpoint20.npz") as data:
        return {k: data[k] for k in data.files}


def _gru_cell(x: np.ndarray, h: np.ndarray, prefix: str, w: dict[str, np.ndarray]) -> np.ndarray:
    gi = x @ w[f"{prefix}_w_ih"].T + w[f"{prefix}_b_ih"]  # [1, 3H]
    gh = h @ w[f"{prefix}_w_hh"].T + w[f"{prefix}_b_hh"]
    hidden = h.shape[-1]
    rz = 1.0 / (1.0 + np.exp(-(gi[:, : 2 * hidden] + gh[:, : 2 * hidden])))
    r, z = rz[:, :hidden], rz[:, hidden:]
    n = np.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
    return (1 - z) * n + z * h


@lru_cache(maxsize=4096)
def predict(word: str) -> tuple[str, ...]:
    """ARPAbet phones for a lower-case word (characters outside a-z are `<unk>` inputs)."""
    w = _weights()
    ids = [_G2IDX.get(c, _G2IDX["<unk>"]) for c in list(word) + ["</s>"]]
    h = np.zeros((1, w["enc_w_hh"].shape[-1]), np.float32)
    for i in ids:
        h = _gru_cell(w["enc_emb"][[i]], h, "enc", w)
    dec = w["dec_emb"][[_START]]
    out: list[str] = []
    for _ in range(_MAX_STEPS):
        h = _gru_cell(dec, h, "dec", w)
        pred = int((h @ w["fc_w"].T + w["fc_b"]).argmax())
        if pred == _END:
            break
        out.append(PHONEMES[pred])
        dec = w["dec_emb"][[pred]]
    return tuple(out)
