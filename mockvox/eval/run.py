"""``evaluate``: a registered voice reads a fixed sentence list; every clip is scored and the results go to MLflow.

Per sentence: Whisper transcript and WER (CER for zh/can/ja/ko), speaker similarity to the voice's default reference,
DNSMOS, duration ratio, whether a fragment reached the GPT's token cap and whether the clip is silent. The means land
as ``eval/*`` metrics on the voice's source run, beside the per-sentence table (``eval/sentences.json``, MLflow's
``log_table`` layout) and the clips (``eval/audio/``); the same summary is set as tags on the logged model and on its
registry versions, so the registry shows how a version sounds.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mockvox.audio.io import load_audio, write_wav
from mockvox.data.asr import AsrConfig, Transcriber, check_language
from mockvox.eval.metrics import (
    CHARACTER_LANGUAGES,
    SpeakerEncoder,
    duration_ratio,
    intelligibility,
    quality,
    speaker_similarity,
)
from mockvox.infer.pipeline import SynthesisParams, Synthesizer
from mockvox.infer.registry import Registry, registered_versions
from mockvox.infer.voices import VoiceSource, open_voice

SENTENCES_DIR = Path(__file__).with_name("sentences")  # <language>.txt: one sentence a line
TOKEN_RATE = 25  # GPT semantic tokens per second of speech
SILENT_PEAK = 1e-3  # a clip whose peak stays below this is silent
TABLE_ARTIFACT = "eval/sentences.json"
AUDIO_ARTIFACTS = "eval/audio"
COLUMNS = ("index", "text", "transcript", "metric", "score", "speaker_sim", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak",
           "dnsmos_p808", "seconds", "duration_ratio", "tokens", "capped", "silent", "audio")  # fmt: skip


def eval_language(mode: str) -> str:
    """The dataset language (zh, can, en, ja, ko) of a synthesis language (``all_zh``, ``yue``, ``auto_can``...)."""
    code = str(mode).strip().lower()
    for prefix in ("all_", "auto_"):
        code = code.removeprefix(prefix)
    return check_language({"yue": "can"}.get(code, code))


def read_sentences(path: str | os.PathLike) -> list[str]:
    """One sentence a line; blank lines and ``#`` comments are skipped."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    sentences = [line for line in lines if line and not line.startswith("#")]
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    return sentences


def load_sentences(language: str) -> list[str]:
    """The bundled evaluation sentences of a dataset language."""
    return read_sentences(SENTENCES_DIR / f"{check_language(language)}.txt")


@contextmanager
def _token_counts(synth: Synthesizer) -> Iterator[list[int]]:
    """Collect the number of GPT tokens generated per fragment while the block synthesises."""
    counts: list[int] = []
    original = synth.semantic_tokens

    def counted(*args, **kwargs):
        tokens = original(*args, **kwargs)
        counts.extend(int(t.numel()) for t in tokens)
        return tokens

    synth.semantic_tokens = counted  # an instance attribute shadowing the method, removed afterwards
    try:
        yield counts
    finally:
        del synth.semantic_tokens


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def score_clip(audio: np.ndarray, sr: int, text: str, language: str, reference: tuple[np.ndarray, int],
               transcriber: Transcriber, encoder: SpeakerEncoder | None, tokens: Sequence[int], max_tokens: int,
               tail_seconds: float = 0.0) -> dict:  # fmt: skip
    """One row of the table; a silent clip gets no speaker similarity or DNSMOS (``None``).

    ``tail_seconds`` of trailing silence (the synthesis' fragment interval) are left out of the duration.
    """
    seconds = max(0.0, audio.shape[0] / sr - tail_seconds)
    silent = float(np.abs(audio).max(initial=0.0)) < SILENT_PEAK
    capped = any(n >= max_tokens for n in tokens) if tokens else seconds >= max_tokens / TOKEN_RATE - 0.1
    asr = intelligibility(audio, sr, text, language, transcriber)
    row = {"text": text, "transcript": asr["transcript"], "metric": asr["metric"], "score": asr[asr["metric"]]}
    row["speaker_sim"] = None if silent else speaker_similarity(audio, sr, *reference, encoder=encoder)
    mos = {} if silent else quality(audio, sr)
    row.update({key: mos.get(key) for key in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")})
    row.update(seconds=seconds, duration_ratio=duration_ratio(seconds, text, language), tokens=list(tokens))
    row.update(capped=capped, silent=silent)
    return {key: _finite(value) if isinstance(value, float) else value for key, value in row.items()}


def _mean(values) -> float:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else math.nan


def summarize(rows: Sequence[dict], metric: str) -> dict[str, float]:
    """``eval/<wer|cer>``, ``eval/speaker_sim``, ``eval/dnsmos`` (overall), ``eval/dnsmos_sig``, ``eval/dnsmos_bak``,
    ``eval/duration_ratio``, ``eval/capped_share`` and ``eval/silent_share``: means over the sentences (NaN when no
    sentence has the value, e.g. every clip silent)."""
    column = {"speaker_sim": "speaker_sim", "dnsmos": "dnsmos_ovrl", "dnsmos_sig": "dnsmos_sig",
              "dnsmos_bak": "dnsmos_bak", "duration_ratio": "duration_ratio"}  # fmt: skip
    summary = {f"eval/{metric}": _mean(r["score"] for r in rows)}
    summary.update({f"eval/{name}": _mean(r[key] for r in rows) for name, key in column.items()})
    summary["eval/capped_share"] = _mean(float(r["capped"]) for r in rows)
    summary["eval/silent_share"] = _mean(float(r["silent"]) for r in rows)
    return summary


def log_evaluation(registry: Registry, model_id: str, summary: dict[str, float], rows: Sequence[dict],
                   clips: Sequence[tuple[str, int, np.ndarray]], settings: dict[str, str]) -> dict:  # fmt: skip
    """Metrics, table and clips on the voice's source run (a new run when it has none); summary and settings as tags
    of the logged model and its registry versions. Returns ``{"run_id", "versions"}``."""
    from mlflow.entities import Metric, RunTag

    client = registry.client
    logged = client.get_logged_model(model_id)
    run_id = logged.source_run_id
    if not run_id:
        run_id = client.create_run(logged.experiment_id, run_name=f"eval-{model_id}").info.run_id
    now = int(time.time() * 1000)
    tags = {key: "nan" if math.isnan(value) else f"{value:.4f}" for key, value in summary.items()}
    tags.update({f"eval/{key}": str(value) for key, value in settings.items()} | {"eval/run_id": run_id})
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in summary.items()],
                     tags=[RunTag(k, v) for k, v in tags.items() if k != "eval/run_id"])  # fmt: skip
    client.log_dict(run_id, {"columns": list(COLUMNS), "data": [[r[c] for c in COLUMNS] for r in rows]}, TABLE_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="mockvox-eval-") as tmp:
        for name, sr, audio in clips:
            write_wav(Path(tmp) / name, audio, sr)
        client.log_artifacts(run_id, tmp, AUDIO_ARTIFACTS)
    client.set_logged_model_tags(model_id, tags)
    versions = registered_versions(registry, model_id)
    for version in versions:
        for key, value in tags.items():
            client.set_model_version_tag(version["name"], str(version["version"]), key, value)
    return {"run_id": run_id, "versions": versions}


def evaluate(ref: str, cfg: DictConfig, sentences: Sequence[str] | None = None, *,
             transcriber: Transcriber | None = None, encoder: SpeakerEncoder | None = None) -> dict:  # fmt: skip
    """Evaluate the voice ``ref`` (model id or ``models:/`` URI) with a composed ``conf/eval.yaml``.

    The voice speaks each sentence (its language's bundled list unless ``sentences``) with its default reference, one
    fixed seed and ``cfg.max_tokens``; see the module docstring for what is scored and logged. Returns ``model_id``,
    ``run_id``, ``language``, ``metric``, ``summary``, ``sentences`` (the rows) and ``versions``.

    Raises:
        ValueError: the voice has no default reference, or its language has no evaluation support.
    """
    source = VoiceSource.from_config(cfg)
    model_id = source.model_id(ref)
    synth = open_voice(model_id, source, cfg.device, cfg.precision)
    reference = synth.voice.reference
    if reference is None:
        raise ValueError(f"voice {model_id} has no default reference to evaluate with")
    language = eval_language(reference.language)
    texts = list(sentences) if sentences is not None else load_sentences(language)
    if not texts:
        raise ValueError("no sentences to evaluate")
    params = SynthesisParams(seed=int(cfg.seed), max_tokens=int(cfg.max_tokens))
    transcriber = transcriber or Transcriber(AsrConfig(**cfg.asr))
    ref_clip = load_audio(reference.audio)
    rows, clips = [], []
    for index, text in enumerate(texts):
        with _token_counts(synth) as counts:
            sr, audio = synth.speak(text, reference.language, params)
        row = score_clip(audio, sr, text, language, ref_clip, transcriber, encoder, counts, params.max_tokens,
                         params.fragment_interval)  # fmt: skip
        name = f"{index:03d}.wav"
        rows.append({"index": index, **row, "audio": f"{AUDIO_ARTIFACTS}/{name}"})
        clips.append((name, sr, audio))
    metric = "cer" if language in CHARACTER_LANGUAGES else "wer"
    summary = summarize(rows, metric)
    settings = {"sentences": len(texts), "seed": params.seed, "max_tokens": params.max_tokens,
                "asr_model": transcriber.cfg.model, "language": language}  # fmt: skip
    logged = log_evaluation(source.registry, model_id, summary, rows, clips, settings)
    return {"model_id": model_id, "language": language, "metric": metric, "summary": summary, "sentences": rows,
            **logged}  # fmt: skip


__all__ = ["COLUMNS", "evaluate", "eval_language", "load_sentences", "log_evaluation", "read_sentences",
           "score_clip", "summarize"]  # fmt: skip
