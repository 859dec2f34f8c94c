"""Training datasets over a features folder (:mod:`mockvox.data.features`) and their collates (the Lightning
DataModules over them are :mod:`mockvox.train.datamodules`).

Correspond to GPT-SoVITS ``module/data_utils.py`` (``TextAudioSpeakerLoader``/``V4`` + collates) and
``AR/data/dataset.py`` (``Text2SemanticDataset``). Differences: items are dicts; durations come from the WAV headers;
small datasets are repeated ``max(2, ceil(min_items / n))`` times (official: ``int(100 / n)``), so at least
``min_items``; SSL and spectrogram are trimmed to a common length after the official one-frame replicate pad; the
v4 mel is cut to twice that length; dropped keys are kept with their reason in ``dropped``. Fixing an official bug,
the GPT collate left-pads phones and BERT, which is what the model's text mask (``pad_mask_left``) assumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Collection
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mockvox.audio.io import load_audio
from mockvox.audio.mel_v4 import V4_MEL, MelConfig, mel_v4, norm_spec
from mockvox.audio.spectral import spectrogram_torch
from mockvox.audio.spectrogram import OFFICIAL, Spectrogram
from mockvox.data.store import has_transcript
from mockvox.text.symbols import cleaned_text_to_sequence

SEMANTIC_HZ = 25
MIN_SEC, MAX_SEC = 0.6, 54.0  # official SoVITS item durations: 0.6 s < d < 54 s
EOS = 1024  # semantic pad value (the GPT's EOS token)
VERSIONS = ("v2", "v4")
HELD_OUT = "held out for evaluation"  # the reason of an ``exclude``-d key in ``dropped``


def _read_json(folder: Path, name: str):
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a features folder: {name} is missing (run feature extraction)")
    return json.loads(path.read_text(encoding="utf-8"))


def _repeat(keys: list[str], min_items: int) -> list[str]:
    """Official repetition of a small dataset (at least twice), here up to at least ``min_items`` items."""
    if not keys or not min_items or len(keys) >= min_items:
        return keys
    return keys * max(2, math.ceil(min_items / len(keys)))


def _no_items(folder: Path, dropped: dict[str, str]) -> ValueError:
    return ValueError(f"no usable training item in {folder} (dropped: {dropped or 'none found'})")


class NotEnoughSpeech(ValueError):
    """A dataset with less usable speech than a training needs; the message says how much there is and is needed."""


def usable_slices(results: list[dict], audio_dir: str | os.PathLike) -> list[tuple[dict, float]]:
    """The slices training can use (a transcript and a duration in (MIN_SEC, MAX_SEC)) with their seconds."""
    usable = []
    for result in results:
        wav = Path(audio_dir) / f"{result['key']}.wav"
        if not has_transcript(result) or not wav.is_file():
            continue
        duration = sf.info(str(wav)).duration
        if MIN_SEC < duration < MAX_SEC:
            usable.append((result, duration))
    return usable


def usable_speech(results: list[dict], audio_dir: str | os.PathLike) -> tuple[float, int]:
    """Seconds and number of the slices training can use (:func:`usable_slices`)."""
    usable = usable_slices(results, audio_dir)
    return sum(seconds for _, seconds in usable), len(usable)


def choose_holdout(results: list[dict], audio_dir: str | os.PathLike, share: float, max_items: int,
                   min_seconds: float = 0.0, keep: Collection[str] = ()) -> list[dict]:  # fmt: skip
    """The slices kept out of training for evaluation (their real audio is the ground truth).

    ``ceil(share * n)`` of the ``n`` usable slices, at most ``max_items``, taken in the order of a hash of their keys:
    the same dataset always holds out the same slices, and a dataset grown by ``mockvox add`` keeps its earlier
    choice unless the count grows. A slice in ``keep`` (the default reference) is never held out, and none is held out
    when training would be left with under ``min_seconds`` of speech or without a slice.
    """
    if share <= 0 or max_items <= 0:
        return []
    usable = usable_slices(results, audio_dir)
    left, count = sum(seconds for _, seconds in usable), len(usable)
    wanted = min(int(max_items), math.ceil(share * count))
    candidates = sorted((item for item in usable if item[0]["key"] not in keep),
                        key=lambda item: hashlib.sha1(item[0]["key"].encode()).hexdigest())  # fmt: skip
    chosen = []
    for result, seconds in candidates:
        if len(chosen) == wanted:
            break
        if count - len(chosen) > 1 and left - seconds >= min_seconds:
            chosen.append(result)
            left -= seconds
    return chosen


def require_speech(file_id: str, results: list[dict], audio_dir: str | os.PathLike, min_seconds: float) -> float:
    """The usable speech of a dataset in seconds; ``NotEnoughSpeech`` when it is under ``min_seconds``."""
    seconds, count = usable_speech(results, audio_dir)
    if seconds >= min_seconds:
        return seconds
    empty = sum(not has_transcript(r) for r in results)
    fix = f"add recordings (`mockvox add {file_id} FILE`)"
    if empty:
        fix += f" or give its {empty} slice(s) without a transcript a text (`mockvox revise`)"
    raise NotEnoughSpeech(
        f"dataset {file_id} has {seconds:.1f} s of usable speech ({count} of {len(results)} slices transcribed and "
        f"{MIN_SEC:g}-{MAX_SEC:g} s long); training needs at least {min_seconds:g} s (data.min_speech_seconds): {fix}"
    )


class SovitsDataset(Dataset):
    """SoVITS items: HuBERT features, waveform and linear spectrogram (``spectrogram``), phone ids (+ v4 mel)."""

    def __init__(
        self,
        features_dir: str | os.PathLike,
        version: str = "v2",
        min_items: int = 100,
        min_sec: float = MIN_SEC,
        max_sec: float = MAX_SEC,
        spectrogram: Spectrogram = OFFICIAL,
        mel: MelConfig = V4_MEL,
        exclude: Collection[str] = (),
    ):
        if version not in VERSIONS:
            raise ValueError(f"unknown SoVITS version {version!r}; accepted: {', '.join(VERSIONS)}")
        self.folder = Path(features_dir)
        self.version = version
        self.spec, self.mel = spectrogram, mel
        self.phones = {e["key"]: e["phones"] for e in _read_json(self.folder, "name2text.json")}
        self.dropped: dict[str, str] = {}
        keys = []
        for key in sorted(self.phones):
            reason = HELD_OUT if key in exclude else self._check(key, min_sec, max_sec)
            if reason:
                self.dropped[key] = reason
            else:
                keys.append(key)
        if not keys:
            raise _no_items(self.folder, self.dropped)
        self.unique_keys = keys
        self.keys = _repeat(keys, min_items)

    def _check(self, key: str, min_sec: float, max_sec: float) -> str | None:
        wav, ssl = self.folder / "wav32k" / f"{key}.wav", self.folder / "cnhubert" / f"{key}.pt"
        if not wav.is_file() or not ssl.is_file():
            return "no wav32k" if not wav.is_file() else "no cnhubert"
        seconds = sf.info(str(wav)).duration
        if not min_sec < seconds < max_sec:  # official: 0.6 s < d < 54 s
            return f"duration {seconds:.2f} s outside ({min_sec:g}, {max_sec:g}) s"
        return None

    def __len__(self) -> int:
        return len(self.keys)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """``[1, S]`` waveform -> linear spectrogram ``[filter_length // 2 + 1, T]``."""
        s = self.spec
        spec = spectrogram_torch(wav, s.filter_length, s.sampling_rate, s.hop_length, s.win_length)
        return spec[0]

    def __getitem__(self, index: int) -> dict:
        key = self.keys[index]
        audio, _ = load_audio(self.folder / "wav32k" / f"{key}.wav", self.spec.sampling_rate)
        wav = torch.from_numpy(audio).unsqueeze(0)  # [1, S]
        spec = self.spectrogram(wav)  # [F, T]
        path = self.folder / "cnhubert" / f"{key}.pt"
        ssl = torch.load(path, map_location="cpu", weights_only=True).float()  # [1, C, T']
        if ssl.shape[-1] != spec.shape[-1]:  # official: pad HuBERT by one replicated frame
            ssl = F.pad(ssl, (0, 1), mode="replicate")
        frames = min(ssl.shape[-1], spec.shape[-1])
        item = {
            "key": key,
            "ssl": ssl[0, :, :frames],  # [C, T]
            "spec": spec[:, :frames],  # [F, T]
            "wav": wav,  # [1, S]
            "phones": torch.tensor(cleaned_text_to_sequence(self.phones[key]), dtype=torch.long),
        }
        if self.version == "v4":
            item["mel"] = norm_spec(mel_v4(wav, self.mel), self.mel)[0, :, : 2 * frames]  # [100, 2T]
        return item


def _pad_stack(tensors: list[torch.Tensor], length: int, value: float = 0.0, left: bool = False) -> torch.Tensor:
    """Pad the last dim of each tensor to ``length`` (on the left or right) and stack."""
    pads = [(length - t.shape[-1], 0) if left else (0, length - t.shape[-1]) for t in tensors]
    return torch.stack([F.pad(t, pad, value=value) for t, pad in zip(tensors, pads, strict=True)])


def _lengths(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.tensor([t.shape[-1] for t in tensors], dtype=torch.long)


def collate_sovits(items: list[dict], min_frames: int = 0, hop_length: int = OFFICIAL.hop_length) -> dict:
    """Right zero-padded SoVITS batch.

    Frames are padded to ``2 * (T_max // 2 + 1)`` like the official collate (even, as ``ssl_proj`` halves and the
    quantizer output is doubled), and to at least ``min_frames`` (the decoder's segment); waveforms to at least
    ``frames * hop_length`` samples so every decoded segment has a target.
    """
    frames = max(2 * (max(it["spec"].shape[-1] for it in items) // 2 + 1), min_frames + min_frames % 2)
    samples = max(max(it["wav"].shape[-1] for it in items), frames * hop_length)
    batch = {"keys": [it["key"] for it in items]}
    for name, length in (("ssl", frames), ("spec", frames), ("wav", samples), ("mel", 2 * frames)):
        if name in items[0]:
            tensors = [it[name] for it in items]
            batch[name], batch[f"{name}_lengths"] = _pad_stack(tensors, length), _lengths(tensors)
    phones = [it["phones"] for it in items]
    batch["phones"], batch["phone_lengths"] = _pad_stack(phones, int(_lengths(phones).max())), _lengths(phones)
    return batch  # ssl [B, C, T], spec [B, F, T], wav [B, 1, S], phones [B, N] (+ mel [B, 100, 2T])


class GPTDataset(Dataset):
    """GPT items: phone ids, BERT features (zeros without a file) and 25 Hz semantic tokens."""

    def __init__(
        self,
        features_dir: str | os.PathLike,
        max_sec: float = 54.0,
        max_phones: int | None = None,
        min_ps_ratio: float = 3.0,
        max_ps_ratio: float = 25.0,
        min_items: int = 100,
        bert_dim: int = 1024,
        exclude: Collection[str] = (),
    ):
        self.folder = Path(features_dir)
        self.bert_dim = bert_dim
        phones = {e["key"]: e["phones"] for e in _read_json(self.folder, "name2text.json")}
        semantic = _read_json(self.folder, "name2semantic.json")
        max_tokens = max_sec * SEMANTIC_HZ
        max_phones = max_tokens / 2.5 if max_phones is None else max_phones  # official: 540 at 54 s
        self.dropped: dict[str, str] = {}
        self.items: dict[str, tuple[list[int], list[int]]] = {}
        for key in sorted(set(phones) | set(semantic)):
            if key in exclude:
                self.dropped[key] = HELD_OUT
                continue
            if key not in phones or key not in semantic:
                self.dropped[key] = "no phones" if key not in phones else "no semantic tokens"
                continue
            ids, tokens = cleaned_text_to_sequence(phones[key]), semantic[key]
            ratio = len(ids) / (len(tokens) / SEMANTIC_HZ) if tokens else math.inf
            if len(tokens) > max_tokens:
                self.dropped[key] = f"{len(tokens)} semantic tokens > {max_tokens:g}"
            elif len(ids) > max_phones:
                self.dropped[key] = f"{len(ids)} phones > {max_phones:g}"
            elif not min_ps_ratio <= ratio <= max_ps_ratio:
                self.dropped[key] = f"{ratio:.1f} phones/s outside [{min_ps_ratio:g}, {max_ps_ratio:g}]"
            else:
                self.items[key] = (ids, tokens)
        if not self.items:
            raise _no_items(self.folder, self.dropped)
        self.unique_keys = list(self.items)
        self.keys = _repeat(self.unique_keys, min_items)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict:
        key = self.keys[index]
        ids, tokens = self.items[key]
        path = self.folder / "bert" / f"{key}.pt"
        if path.is_file():
            bert = torch.load(path, map_location="cpu", weights_only=True).float()  # [bert_dim, N]
            if tuple(bert.shape) != (self.bert_dim, len(ids)):
                raise ValueError(f"{path}: BERT features {tuple(bert.shape)}, expected ({self.bert_dim}, {len(ids)})")
        else:
            bert = torch.zeros(self.bert_dim, len(ids))
        return {
            "key": key,
            "phones": torch.tensor(ids, dtype=torch.long),
            "bert": bert,
            "semantic": torch.tensor(tokens, dtype=torch.long),
        }


def collate_gpt(items: list[dict], pad_semantic: int = EOS) -> dict:
    """GPT batch: phones and BERT left-padded with zeros, semantic tokens right-padded with ``pad_semantic``."""
    phones, bert, semantic = ([it[k] for it in items] for k in ("phones", "bert", "semantic"))
    n, m = int(_lengths(phones).max()), int(_lengths(semantic).max())
    return {
        "keys": [it["key"] for it in items],
        "phones": _pad_stack(phones, n, left=True),  # [B, N]
        "phone_lengths": _lengths(phones),
        "bert": _pad_stack(bert, n, left=True),  # [B, bert_dim, N]
        "semantic": _pad_stack(semantic, m, value=pad_semantic),  # [B, M]
        "semantic_lengths": _lengths(semantic),
    }
