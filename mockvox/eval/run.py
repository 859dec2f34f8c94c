"""``evaluate``: a registered voice reads a sentence list and its held-out slices' texts; every clip is scored beside
the floor (the voice before fine-tuning) and the ceiling (the real held-out slices), and the results go to MLflow.

Per clip: Whisper transcript and WER / CER (CER only for zh/can/ja/ko), speaker similarity to the speaker's real
clips (default reference + held-out slices), DNSMOS, duration ratio, whether a fragment reached the GPT's token cap
and whether the clip is silent. The means land as ``eval/*`` (the voice), ``eval/floor/*`` and ``eval/ceiling/*``
metrics on the voice's source run, beside the per-clip table (``eval/sentences.json``, MLflow's ``log_table``
layout), the clips (``eval/audio/``) and a chart (``eval/summary.png``); the summary is set as tags on the logged
model and its registry versions, so the registry shows how a version sounds.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from mockvox.audio.io import load_audio, write_wav
from mockvox.data.asr import AsrConfig, Transcriber, check_language
from mockvox.eval.metrics import (
    CHARACTER_LANGUAGES,
    SpeakerEncoder,
    cosine,
    duration_ratio,
    embed,
    intelligibility,
    quality,
    speaker_encoder,
    speaker_profile,
)
from mockvox.infer.pipeline import SynthesisParams, Synthesizer
from mockvox.infer.registry import Registry, registered_versions
from mockvox.infer.streaming import stream_mode
from mockvox.infer.voices import PARTS, VoiceSource, open_voice
from mockvox.voice import Reference

log = logging.getLogger(__name__)
SENTENCES_DIR = Path(__file__).with_name("sentences")  # <language>.txt: one sentence a line
TOKEN_RATE = 25  # GPT semantic tokens per second of speech
SILENT_PEAK = 1e-3  # a clip whose peak stays below this is silent
TABLE_ARTIFACT = "eval/sentences.json"
AUDIO_ARTIFACTS = "eval/audio"
CHART_ARTIFACT = "eval/summary.png"
KINDS = ("voice", "floor", "real")  # who speaks a row: the voice, the un-fine-tuned voice, the speaker (held out)
PREFIX = {"voice": "eval/", "floor": "eval/floor/", "real": "eval/ceiling/"}
COLUMNS = ("voice", "set", "line", "text", "transcript", "score", "wer", "cer", "speaker_sim", "dnsmos_ovrl",
           "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "seconds", "duration_ratio", "tokens", "capped", "silent",
           "audio")  # fmt: skip
Progress = Callable[[int, int], None]


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


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class Line:
    """One text of the evaluation: a bundled (or given) sentence, or a held-out slice with its real audio."""

    set: str  # "sentences" | "holdout"
    text: str
    real: Reference | None = None


class Scorer:
    """Scores clips of one language: intelligibility, similarity to the speaker's real clips, DNSMOS, pace."""

    def __init__(self, language: str, transcriber: Transcriber, encoder: SpeakerEncoder | None,
                 real: Sequence[tuple[np.ndarray, int]]):  # fmt: skip
        self.language, self.transcriber, self.encoder = language, transcriber, encoder
        self.embeddings = [embed(audio, sr, encoder) for audio, sr in real]
        self.profile = speaker_profile(self.embeddings)

    def similarity(self, audio: np.ndarray, sr: int, leave_out: int | None = None) -> float | None:
        """Cosine similarity to the speaker's profile; ``leave_out``: a real clip scored against the others."""
        others = [e for i, e in enumerate(self.embeddings) if i != leave_out]
        if not others:
            return None
        profile = self.profile if leave_out is None else speaker_profile(others)
        return cosine(embed(audio, sr, self.encoder), profile)

    def row(self, audio: np.ndarray, sr: int, text: str, tokens: Sequence[int] = (), max_tokens: int = 0,
            tail_seconds: float = 0.0, leave_out: int | None = None) -> dict:  # fmt: skip
        """One row of the table; a silent clip gets no speaker similarity or DNSMOS (``None``).

        ``tail_seconds`` of trailing silence (the synthesis' fragment interval) are left out of the duration;
        ``tokens`` are the GPT tokens of each fragment (a real clip has none and is never capped).
        """
        seconds = max(0.0, audio.shape[0] / sr - tail_seconds)
        silent = float(np.abs(audio).max(initial=0.0)) < SILENT_PEAK
        capped = bool(max_tokens) and any(n >= max_tokens for n in tokens)
        asr = intelligibility(audio, sr, text, self.language, self.transcriber)
        row = {"text": text, "transcript": asr["transcript"], "score": asr[asr["metric"]], "wer": asr.get("wer"),
               "cer": asr["cer"]}  # fmt: skip
        row["speaker_sim"] = None if silent else self.similarity(audio, sr, leave_out)
        mos = {} if silent else quality(audio, sr)
        row.update({key: mos.get(key) for key in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")})
        row.update(seconds=seconds, duration_ratio=duration_ratio(seconds, text, self.language), tokens=list(tokens))
        row.update(capped=capped, silent=silent)
        return {key: _finite(value) if isinstance(value, float) else value for key, value in row.items()}


def _mean(values) -> float:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else math.nan


def summarize(rows: Sequence[dict], metric: str, prefix: str = "eval/") -> dict[str, float]:
    """Means over ``rows``: ``<prefix><wer|cer>`` (the language's metric; ``cer`` always), ``speaker_sim``,
    ``dnsmos`` (overall), ``dnsmos_sig``, ``dnsmos_bak``, ``duration_ratio``, ``capped_share`` and ``silent_share``
    (NaN when no row has the value, e.g. every clip silent)."""
    column = {metric: "score", "cer": "cer", "speaker_sim": "speaker_sim", "dnsmos": "dnsmos_ovrl",
              "dnsmos_sig": "dnsmos_sig", "dnsmos_bak": "dnsmos_bak", "duration_ratio": "duration_ratio"}  # fmt: skip
    summary = {f"{prefix}{name}": _mean(r[key] for r in rows) for name, key in column.items()}
    summary[f"{prefix}capped_share"] = _mean(float(r["capped"]) for r in rows)
    summary[f"{prefix}silent_share"] = _mean(float(r["silent"]) for r in rows)
    return summary


def log_evaluation(registry: Registry, model_id: str, summary: dict[str, float], rows: Sequence[dict],
                   clips: Sequence[tuple[str, int, np.ndarray]], settings: dict[str, str],
                   chart: Callable[[Path], Path] | None = None) -> dict:  # fmt: skip
    """Metrics, table, clips (and the chart ``chart(path)`` draws) on the voice's source run (a new run when it has
    none); summary and settings as tags of the logged model and its registry versions. Returns ``{"run_id",
    "versions"}``."""
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
    if chart is not None:
        with tempfile.TemporaryDirectory(prefix="mockvox-eval-") as tmp:
            drawn = chart(Path(tmp) / Path(CHART_ARTIFACT).name)
            client.log_artifact(run_id, str(drawn), Path(CHART_ARTIFACT).parent.as_posix())
    client.set_logged_model_tags(model_id, tags)
    versions = registered_versions(registry, model_id)
    for version in versions:
        for key, value in tags.items():
            client.set_model_version_tag(version["name"], str(version["version"]), key, value)
    return {"run_id": run_id, "versions": versions}


def eval_lines(cfg: DictConfig, language: str, holdout: Sequence[Reference],
               sentences: Sequence[str] | None = None) -> list[Line]:  # fmt: skip
    """``sentences`` (or ``evaluation.sentences``' file, or the language's bundled list), cut to
    ``evaluation.limit``, then the held-out slices (with ``evaluation.holdout``)."""
    ev = cfg.evaluation
    if sentences is None:
        sentences = read_sentences(ev.sentences) if ev.get("sentences") else load_sentences(language)
    texts = list(sentences)[: ev.limit] if ev.get("limit") else list(sentences)
    lines = [Line("sentences", text) for text in texts]
    if ev.get("holdout", True):
        lines += [Line("holdout", clip.text, clip) for clip in holdout]
    if not lines:
        raise ValueError("no sentences to evaluate")
    return lines


def _encoder(ev: DictConfig) -> tuple[SpeakerEncoder | None, str]:
    """The ``evaluation.speaker`` encoder (None: resemblyzer's shared default) and a name for the tags."""
    from omegaconf import OmegaConf

    node = ev.get("speaker")
    if not node:
        return None, "ResemblyzerEncoder"
    spec = OmegaConf.to_container(node, resolve=True)
    target = spec.pop("_target_")
    name = target.rsplit(".", 1)[-1] + (f"({spec['model']})" if spec.get("model") else "")
    return speaker_encoder(target, **spec), name


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if str(name) == "auto" else str(name)


def _speak(synth: Synthesizer, line: Line, lang: str, params: SynthesisParams,
           mode: str = "whole") -> tuple[int, np.ndarray, list[int]]:  # fmt: skip
    """The line in the voice's default reference, through the stream of ``mode`` (``whole`` is read per fragment:
    the same audio, with each fragment's token count)."""
    chunks = list(synth.stream(None, None, None, line.text, lang, params, "fragment" if mode == "whole" else mode))
    audio = np.concatenate([c.audio for c in chunks]) if chunks else np.zeros(0, dtype=np.float32)
    return synth.sample_rate, audio, [c.tokens for c in chunks if c.final]


def evaluate(ref: str, cfg: DictConfig, sentences: Sequence[str] | None = None, *,
             transcriber: Transcriber | None = None, encoder: SpeakerEncoder | None = None,
             progress: Progress | None = None) -> dict:  # fmt: skip
    """Evaluate the voice ``ref`` (model id or ``models:/`` URI) with a config holding ``evaluation``, ``asr``,
    ``logger`` and ``paths`` (a composed ``conf/eval.yaml`` or ``conf/train.yaml``).

    The voice speaks each line (:func:`eval_lines`) with its default reference, one fixed seed and
    ``evaluation.max_tokens``; so does the un-fine-tuned voice (``evaluation.floor``), and the real held-out slices
    are scored as they are. See the module docstring for what is scored and logged. Returns ``model_id``, ``run_id``,
    ``language``, ``metric``, ``summary``, ``sentences`` (the rows) and ``versions``.

    Raises:
        ValueError: the voice has no default reference, or its language has no evaluation support.
    """
    from mockvox.eval.floor import floor_synthesizer
    from mockvox.eval.report import write_chart

    ev = cfg.evaluation
    source = VoiceSource.from_config(cfg)
    model_id = source.model_id(ref)
    device = _device(ev.device)
    synth = open_voice(model_id, source, device, ev.precision)
    reference = synth.voice.reference
    if reference is None:
        raise ValueError(f"voice {model_id} has no default reference to evaluate with")
    language = eval_language(reference.language)
    lines = eval_lines(cfg, language, synth.voice.holdout, sentences)
    real = [line for line in lines if line.real is not None]
    params = SynthesisParams(seed=int(ev.seed), max_tokens=int(ev.max_tokens))
    mode = stream_mode(ev.get("streaming_mode", "whole"))
    transcriber = transcriber or Transcriber(AsrConfig(**cfg.asr))
    encoder_name = type(encoder).__name__
    if encoder is None:
        encoder, encoder_name = _encoder(ev)
    real_audio = [load_audio(clip.audio) for clip in [reference, *(line.real for line in real)]]
    scorer = Scorer(language, transcriber, encoder, [(audio, sr) for audio, sr in real_audio])
    total = len(lines) * (2 if ev.get("floor", True) else 1) + len(real)
    done, rows, clips = 0, [], []

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def add(kind: str, index: int, line: Line, sr: int, audio: np.ndarray, row: dict) -> None:
        name = f"{kind}-{index:03d}.wav"
        rows.append({"voice": kind, "set": line.set, "line": index, **row, "audio": f"{AUDIO_ARTIFACTS}/{name}"})
        clips.append((name, sr, audio))
        step()

    def read(speaker: Synthesizer, kind: str) -> None:
        for index, line in enumerate(lines):
            sr, audio, tokens = _speak(speaker, line, reference.language, params, mode)
            add(kind, index, line, sr, audio, scorer.row(audio, sr, line.text, tokens, params.max_tokens,
                                                         params.fragment_interval))  # fmt: skip

    read(synth, "voice")
    for number, line in enumerate(real, start=1):  # the real clip number ``number`` is left out of its profile
        audio, sr = real_audio[number]
        add("real", lines.index(line), line, sr, audio, scorer.row(audio, sr, line.text, leave_out=number))
    if ev.get("floor", True):
        with tempfile.TemporaryDirectory(prefix="mockvox-floor-") as tmp:  # its reference clip is read from here
            floor = floor_synthesizer(synth.voice, source.pretrained_dir, Path(tmp), device, ev.precision, PARTS)
            if floor is not None:
                read(floor, "floor")
            elif progress is not None:
                progress(total, total)
            del floor
    metric = "cer" if language in CHARACTER_LANGUAGES else "wer"
    summary: dict[str, float] = {}
    for kind in KINDS:
        kept = [row for row in rows if row["voice"] == kind]
        if kept:
            summary.update(summarize(kept, metric, PREFIX[kind]))
    settings = {"sentences": sum(line.set == "sentences" for line in lines), "holdout": len(real),
                "seed": params.seed, "max_tokens": params.max_tokens, "asr_model": transcriber.cfg.model,
                "speaker_encoder": encoder_name, "language": language, "streaming_mode": mode}  # fmt: skip
    title = f"{model_id} ({language})"
    chart = (lambda path: write_chart(rows, metric, path, title)) if ev.get("chart", True) else None
    logged = log_evaluation(source.registry, model_id, summary, rows, clips, settings, chart)
    return {"model_id": model_id, "language": language, "metric": metric, "summary": summary, "sentences": rows,
            **logged}  # fmt: skip


__all__ = ["COLUMNS", "Line", "Scorer", "eval_lines", "evaluate", "eval_language", "load_sentences",
           "log_evaluation", "read_sentences", "summarize"]  # fmt: skip
