"""Metric functions for a generated clip: Whisper WER/CER, resemblyzer similarity, DNSMOS quality, speaking rate."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Protocol, runtime_checkable

import numpy as np

from mockvox.audio.io import resample
from mockvox.data.asr import ASR_SAMPLE_RATE, Transcriber

EVAL_SAMPLE_RATE = 16000  # resemblyzer and DNSMOS both take 16 kHz mono
# Languages scored by characters (no word spaces to rely on); the others are scored by words.
CHARACTER_LANGUAGES = frozenset({"zh", "can", "yue", "ja", "ko"})
# Expected speaking rate of read speech, in scoring units (words for en, characters otherwise) per second.
# Assumptions, not measurements: English ~150 words/min (the usual figure for read/conversational speech);
# Mandarin ~5.2 and Japanese ~7.8 syllables/s from Pellegrino, Coupé & Marsico (2011, Language 87(3)), taking
# one Chinese character = one syllable and one Japanese kana/kanji ~ one mora; Cantonese assumed like Mandarin;
# Korean ~6 syllable blocks/s assumed (one Hangul block = one syllable).
SPEAKING_RATE = {"en": 2.5, "zh": 5.2, "can": 5.2, "yue": 5.2, "ja": 7.8, "ko": 6.0}


def _is_cjk(language: str) -> bool:
    return language in CHARACTER_LANGUAGES


def normalize_text(text: str, language: str) -> str:
    """Lowercase, drop punctuation and symbols, collapse whitespace (removed entirely for CJK languages)."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("'", "")  # it's -> its
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    if _is_cjk(language):
        return re.sub(r"\s+", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio  # (frames, channels), as soundfile reads


def _to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    return resample(_mono(audio), sr, EVAL_SAMPLE_RATE)


def intelligibility(audio: np.ndarray, sr: int, text: str, language: str, transcriber: Transcriber) -> dict:
    """Transcribe ``audio`` and score it against ``text``: ``metric`` is WER for English, CER for zh/can/yue/ja/ko;
    the CER is given for every language (English characters too, spaces included)."""
    import jiwer

    transcript = transcriber.transcribe(resample(_mono(audio), sr, ASR_SAMPLE_RATE), language)
    reference, hypothesis = normalize_text(text, language), normalize_text(transcript, language)
    if not reference:
        raise ValueError("the reference text is empty after normalisation")
    metric = "cer" if _is_cjk(language) else "wer"
    scores = {"cer": float(jiwer.cer(reference, hypothesis))}
    if metric == "wer":
        scores["wer"] = float(jiwer.wer(reference, hypothesis))
    return {
        "transcript": transcript,
        "reference_normalized": reference,
        "hypothesis_normalized": hypothesis,
        "metric": metric,
        **scores,
    }


@runtime_checkable
class SpeakerEncoder(Protocol):
    """Anything that maps a mono clip to a fixed-size speaker embedding."""

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Speaker embedding of one mono clip."""
        ...


class ResemblyzerEncoder:
    """Resemblyzer's GE2E ``VoiceEncoder`` (weights shipped in the wheel) on CPU."""

    def __init__(self, device: str = "cpu") -> None:
        try:
            from resemblyzer import VoiceEncoder
        except ModuleNotFoundError as exc:
            if exc.name != "pkg_resources":
                raise
            raise ImportError(
                "webrtcvad 2.0.10 (needs pkg_resources) shadows webrtcvad-wheels; run "
                "`pip install --force-reinstall --no-deps webrtcvad-wheels`"
            ) from exc
        self.model = VoiceEncoder(device=device, verbose=False)

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """L2-normalised 256-d embedding of a clip (resampled to 16 kHz, peak-normalised)."""
        wav = _to_16k(audio, sr)
        peak = float(np.abs(wav).max(initial=0.0))
        if peak == 0.0:
            raise ValueError("cannot embed a silent clip")
        return np.asarray(self.model.embed_utterance(wav / peak * 0.95), dtype=np.float32)


class WavLMEncoder:
    """The x-vector head of a WavLM speaker-verification model (``WavLMForXVector``): a hub name such as
    ``microsoft/wavlm-base-plus-sv`` (downloaded on first use into ``cache_dir``, the Hugging Face cache by default)
    or a local model folder. Stronger than resemblyzer on hard cases; its scores are on its own scale, so compare
    runs measured with the same encoder (the ``eval/speaker_encoder`` tag says which)."""

    def __init__(self, model: str = "microsoft/wavlm-base-plus-sv", device: str = "cpu", cache_dir: str | None = None,
                 local_files_only: bool = False) -> None:  # fmt: skip
        import torch
        from transformers import AutoFeatureExtractor, WavLMForXVector

        options = {"cache_dir": cache_dir, "local_files_only": local_files_only}
        self.extractor = AutoFeatureExtractor.from_pretrained(model, **options)
        self.model = WavLMForXVector.from_pretrained(model, **options).to(device).eval()
        self.device, self._torch = torch.device(device), torch

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """The model's x-vector of a clip (resampled to 16 kHz)."""
        inputs = self.extractor(_to_16k(audio, sr), sampling_rate=EVAL_SAMPLE_RATE, return_tensors="pt")
        with self._torch.inference_mode():
            vector = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).embeddings[0]
        return vector.float().cpu().numpy()


@functools.lru_cache(maxsize=4)
def speaker_encoder(target: str, **kwargs) -> SpeakerEncoder:
    """An encoder class by import path (``mockvox.eval.metrics.WavLMEncoder``) built with ``kwargs``; one instance
    per process and settings (the evaluation's ``evaluation.speaker`` group)."""
    from hydra.utils import get_class

    return get_class(target)(**kwargs)


@functools.lru_cache(maxsize=1)
def default_encoder() -> ResemblyzerEncoder:
    """The shared resemblyzer encoder, loaded on first use."""
    return ResemblyzerEncoder()


def embed(audio: np.ndarray, sr: int, encoder: SpeakerEncoder | None = None) -> np.ndarray:
    """The unit-length speaker embedding of a clip (resemblyzer unless ``encoder`` is given)."""
    vector = np.asarray((encoder or default_encoder()).embed(_mono(audio), sr), dtype=np.float64)
    return vector / np.linalg.norm(vector)


def speaker_profile(embeddings: list[np.ndarray]) -> np.ndarray:
    """A speaker's embedding from several of their clips: the normalised mean of the clips' unit embeddings."""
    if not embeddings:
        raise ValueError("a speaker profile needs at least one clip")
    mean = np.mean([e / np.linalg.norm(e) for e in embeddings], axis=0)
    return mean / np.linalg.norm(mean)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def speaker_similarity(
    audio_a: np.ndarray, sr_a: int, audio_b: np.ndarray, sr_b: int, encoder: SpeakerEncoder | None = None
) -> float:
    """Cosine similarity of the two clips' speaker embeddings (resemblyzer unless ``encoder`` is given)."""
    return cosine(embed(audio_a, sr_a, encoder), embed(audio_b, sr_b, encoder))


def quality(audio: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS P.835 (overall, signal, background) and P.808 scores from speechmos's ONNX models, at 16 kHz."""
    from speechmos import dnsmos

    wav = _to_16k(audio, sr)
    peak = float(np.abs(wav).max(initial=0.0))
    if peak > 1.0:
        wav = wav / peak
    scores = dnsmos.run(wav, sr=EVAL_SAMPLE_RATE)
    return {f"dnsmos_{key}": float(scores[f"{key}_mos"]) for key in ("ovrl", "sig", "bak", "p808")}


def duration_ratio(seconds: float, text: str, language: str) -> float:
    """Clip length over the length expected at :data:`SPEAKING_RATE` for ``text`` (1.0: on pace, >1: slow)."""
    if language not in SPEAKING_RATE:
        raise ValueError(f"no speaking rate for {language!r}: expected one of {', '.join(SPEAKING_RATE)}")
    normalized = normalize_text(text, language)
    units = len(normalized) if _is_cjk(language) else len(normalized.split())
    if units == 0:
        raise ValueError("the text is empty after normalisation")
    return float(seconds) / (units / SPEAKING_RATE[language])
