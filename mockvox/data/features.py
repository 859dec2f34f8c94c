"""Training features of a dataset: GPT-SoVITS ``prepare_datasets`` stages 1-3, cached per dataset version.

Corresponds to ``1-get-text.py`` (phones, zh BERT), ``2-get-hubert-wav32k.py`` (32 kHz copy, HuBERT features) and
``3-get-semantic.py`` (25 Hz codes from the SoVITS quantizer). Differences: one pass over the clips instead of three
processes; JSON manifests (``name2text.json``, ``name2semantic.json``) instead of TSV; HuBERT features kept float32;
skipped clips are recorded with their reason; the result is cached under
``{cache_root}/{file_id}/{dataset version}-{audio kind}-{extractor tag}/`` and published with one atomic rename.

Folder layout:
    name2text.json        [{"key", "phones": [symbols], "word2ph": [int] | null, "norm_text"}]
    bert/{key}.pt         [bert_dim, n_phones] float16 (zh only; absent -> zeros at training)
    wav32k/{key}.wav      int16 32 kHz, loudness-mixed (``scale_for_wav32k``)
    cnhubert/{key}.pt     [1, C, T50] float32
    name2semantic.json    {key: [codes]} (25 Hz)
    meta.json             written last: what was built from what, kept keys, skipped keys and why
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mockvox.audio.io import AudioError, load_audio, resample, write_wav
from mockvox.audio.spectrogram import OFFICIAL
from mockvox.data.ids import validate_slice_key
from mockvox.data.store import DatasetStore, has_transcript, write_json_atomic
from mockvox.models.hubert import HubertSSL, scale_for_hubert, scale_for_wav32k
from mockvox.models.sovits_common import SoVITSBase
from mockvox.modules.commons import eval_mode
from mockvox.text.bert import Bert, bert_feature
from mockvox.text.cleaner import clean_text, normalize_language

FORMAT = 1  # layout version of a features folder
SAMPLE_RATE = OFFICIAL.sampling_rate  # the wav32k rate unless Extractors say otherwise
MAX_PEAK = 2.2  # official: clips louder than this are skipped
META = "meta.json"

Progress = Callable[[str, int, int], None]


class FeatureExtractionError(RuntimeError):
    """A slice whose features could not be computed; the message names the slice."""


@dataclass
class Extractors:
    """The pretrained models that turn a dataset into training features."""

    hubert: HubertSSL  # 16 kHz waveform -> [1, C, T50]
    sovits: nn.Module  # ssl_proj + quantizer of a SynthesizerTrn (v2) or SynthesizerTrnV3 (v4)
    bert: Bert | None = None  # None -> no BERT files (zeros at training)
    bert_dim: int = 1024
    tag: str = ""  # identity of the models; empty -> computed by :func:`extractors_tag`
    sample_rate: int = SAMPLE_RATE  # of the wav32k copies: the SoVITS spectrogram's (``cfg.model.spectrogram``)

    @classmethod
    def create(
        cls, hubert: HubertSSL, sovits: nn.Module, bert: Bert | None = None, sample_rate: int = SAMPLE_RATE
    ) -> Extractors:
        """Extractors with ``bert_dim`` from the BERT (1024 without one) and the tag computed from the weights."""
        bert_dim = bert.hidden_size if bert is not None else 1024
        return cls(hubert, sovits, bert, bert_dim, extractors_tag(hubert, sovits, bert, sample_rate), sample_rate)


def _hash_state(digest, module: nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())


def extractors_tag(
    hubert: nn.Module, sovits: nn.Module, bert: Bert | None = None, sample_rate: int = SAMPLE_RATE
) -> str:
    """Short hash of the HuBERT weights, the SoVITS ``ssl_proj`` + ``quantizer`` weights and the BERT name (and of a
    wav32k rate other than the official one)."""
    digest = hashlib.sha256(f"mockvox-features-{FORMAT}".encode())
    if sample_rate != OFFICIAL.sampling_rate:  # the official rate adds nothing: tags of earlier folders hold
        digest.update(f"rate:{sample_rate}".encode())
    for module in (hubert, sovits.ssl_proj, sovits.quantizer):
        _hash_state(digest, module)
    if bert is None:
        digest.update(b"bert:none")
    else:
        name = str(getattr(bert.model.config, "_name_or_path", "") or "")
        digest.update(f"bert:{name}:{bert.hidden_size}".encode())
        if not name:
            _hash_state(digest, bert.model)
    return digest.hexdigest()[:12]


def semantic_codes(sovits: SoVITSBase, ssl: torch.Tensor) -> torch.Tensor:
    """HuBERT features ``[1, C, T50]`` -> codes ``[1, 1, T25]`` (the generator's ``extract_latent``, v2 or v4)."""
    return sovits.extract_latent(ssl)


def dataset_version(store: DatasetStore, file_id: str, audio_dir: Path) -> str:
    """The dataset's last recorded version, else a hash of its ``output.json`` and audio file sizes."""
    versions = store.versions(file_id)
    if versions:
        return str(versions[-1]["version"])
    digest = hashlib.md5(store.output_json(file_id).read_bytes())
    if audio_dir.is_dir():
        for path in sorted(audio_dir.glob("*.wav")):
            digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return "h" + digest.hexdigest()[:16]


def is_complete(folder: Path) -> bool:
    """A features folder is complete once its ``meta.json`` (written last) parses."""
    try:
        return json.loads((folder / META).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _clean_line(key: str, text: str, language: str, extractors: Extractors, out: Path) -> dict | None:
    """One ASR line -> its name2text entry (+ the zh BERT file); None when the text has no phones."""
    use_bert = extractors.bert is not None and language == "zh"  # official: BERT only for Mandarin
    try:
        phones, word2ph, norm_text = clean_text(text.replace("%", "-").replace("￥", ","), language)
        if not phones:
            return None
        if use_bert:
            _save_bert(extractors, norm_text, word2ph, len(phones), out / "bert" / f"{key}.pt")
    except Exception as err:
        raise FeatureExtractionError(f"slice {key}: text {text!r}: {type(err).__name__}: {err}") from err
    return {"key": key, "phones": phones, "word2ph": word2ph, "norm_text": norm_text}


def _text_stage(
    results: list[dict], language: str, extractors: Extractors, out: Path, skipped: dict, progress: Progress | None
) -> list[dict]:
    """Phones (+ zh BERT files) of every ASR line; duplicates, empty transcripts and lines without phones: skipped."""
    entries: list[dict] = []
    seen: set[str] = set()
    for i, result in enumerate(results):
        key = validate_slice_key(result["key"])
        if key in seen:
            skipped[key] = "duplicate key"
        elif not has_transcript(result):
            skipped[key] = "empty transcript (no speech recognised; revise its text to train on it)"
        else:
            seen.add(key)
            entry = _clean_line(key, result["text"], language, extractors, out)
            if entry is None:
                skipped[key] = "no phones in the text"
            else:
                entries.append(entry)
        _report(progress, "text", i + 1, len(results))
    return entries


def _save_bert(extractors: Extractors, norm_text: str, word2ph: list[int] | None, n_phones: int, path: Path) -> None:
    if word2ph is None:
        raise ValueError("Mandarin text without word2ph")
    feats = bert_feature(extractors.bert, norm_text, word2ph)  # [H, n_phones]
    if tuple(feats.shape) != (extractors.bert_dim, n_phones):
        raise ValueError(f"BERT features {tuple(feats.shape)}, expected ({extractors.bert_dim}, {n_phones})")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats.to(torch.float16).contiguous().clone(), path)


def hubert_features(
    hubert: HubertSSL, audio: np.ndarray | str | os.PathLike, sample_rate: int = SAMPLE_RATE
) -> torch.Tensor:
    """HuBERT features ``[1, C, T50]`` of a ``sample_rate`` clip (array or file) with the official dataset scaling."""
    if not isinstance(audio, np.ndarray):
        audio, _ = load_audio(audio, sample_rate)
    device = next(hubert.parameters()).device
    wav16k = torch.from_numpy(resample(scale_for_hubert(audio).astype(np.float32), sample_rate, 16000))
    with torch.inference_mode():
        return hubert(wav16k.to(device)).float()


def _audio_features(wav_path: Path, key: str, extractors: Extractors, out: Path) -> tuple[list[int] | None, str | None]:
    """wav32k + HuBERT features + semantic codes of one clip; ``(None, reason)`` when the clip is skipped."""
    try:
        audio, _ = load_audio(wav_path, extractors.sample_rate)
    except AudioError as err:
        return None, f"audio: {err}"
    peak = float(np.abs(audio).max())
    if peak > MAX_PEAK:
        return None, f"peak {peak:.2f} above {MAX_PEAK}"
    wav32k = np.clip(scale_for_wav32k(audio), -32768, 32767).astype(np.int16)
    ssl = hubert_features(extractors.hubert, audio, extractors.sample_rate)  # [1, C, T50]
    if not ssl.isfinite().all():
        return None, "HuBERT features are not finite"
    param = next(extractors.sovits.ssl_proj.parameters())
    codes = semantic_codes(extractors.sovits, ssl.to(param.device, param.dtype))  # [1, 1, T25]
    write_wav(out / "wav32k" / f"{key}.wav", wav32k, extractors.sample_rate)
    torch.save(ssl.cpu().contiguous(), out / "cnhubert" / f"{key}.pt")
    return codes[0, 0].cpu().tolist(), None


def _audio_stage(
    entries: list[dict], audio_dir: Path, extractors: Extractors, out: Path, skipped: dict, progress: Progress | None
) -> dict[str, list[int]]:
    (out / "wav32k").mkdir()
    (out / "cnhubert").mkdir()
    semantic = {}
    for i, entry in enumerate(entries):
        key = entry["key"]
        wav_path = audio_dir / f"{key}.wav"
        if not wav_path.is_file():
            raise FeatureExtractionError(f"slice {key}: no audio file {wav_path}")
        try:
            codes, reason = _audio_features(wav_path, key, extractors, out)
        except Exception as err:
            raise FeatureExtractionError(f"slice {key}: {type(err).__name__}: {err}") from err
        if codes is None:
            skipped[key] = reason
            (out / "bert" / f"{key}.pt").unlink(missing_ok=True)
        else:
            semantic[key] = codes
        _report(progress, "features", i + 1, len(entries))
    return semantic


def _build(
    staging: Path, output: dict, audio_dir: Path, extractors: Extractors, progress: Progress | None
) -> tuple[list[str], dict[str, str]]:
    language = normalize_language(output["language"])
    skipped: dict[str, str] = {}
    with torch.inference_mode(), eval_mode(extractors.hubert, extractors.sovits):
        entries = _text_stage(output["results"], language, extractors, staging, skipped, progress)
        semantic = _audio_stage(entries, audio_dir, extractors, staging, skipped, progress)
    kept = [e for e in entries if e["key"] in semantic]
    write_json_atomic(staging / "name2text.json", kept)
    write_json_atomic(staging / "name2semantic.json", semantic)
    return [e["key"] for e in kept], skipped


def _publish(staging: Path, final: Path) -> None:
    """Rename the staged folder into place (a concurrent complete copy wins; an incomplete one is replaced)."""
    if final.exists() and not is_complete(final):
        shutil.rmtree(final)
    try:
        os.replace(staging, final)
    except OSError:
        if not is_complete(final):
            raise
        shutil.rmtree(staging, ignore_errors=True)


def extract_features(
    store: DatasetStore,
    file_id: str,
    extractors: Extractors,
    cache_root: str | os.PathLike,
    use_denoised: bool = True,
    progress: Progress | None = None,
) -> Path:
    """The features folder of the dataset's current version, computed once and reused afterwards.

    Raises:
        FeatureExtractionError: a slice failed (its key is named) or no slice is usable.
    """
    output = store.read_output(file_id)
    kind = "denoised" if output.get("denoised") and use_denoised else "sliced"
    audio_dir = store.denoised_dir(file_id) if kind == "denoised" else store.sliced_dir(file_id)
    version = dataset_version(store, file_id, audio_dir)
    tag = extractors.tag or extractors_tag(
        extractors.hubert, extractors.sovits, extractors.bert, extractors.sample_rate
    )
    final = Path(cache_root) / file_id / f"{version}-{kind}-{tag}"
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".staging"))
    try:
        keys, skipped = _build(staging, output, audio_dir, extractors, progress)
        if not keys:
            raise FeatureExtractionError(f"dataset {file_id}: no usable slice (skipped: {skipped})")
        meta = {
            "format": FORMAT, "file_id": file_id, "dataset_version": version, "tag": tag, "audio": kind,
            "language": normalize_language(output["language"]), "sample_rate": extractors.sample_rate,
            "bert": extractors.bert is not None, "bert_dim": extractors.bert_dim, "keys": keys, "skipped": skipped,
            "created": datetime.now().astimezone().isoformat(),
        }  # fmt: skip
        write_json_atomic(staging / META, meta)
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
