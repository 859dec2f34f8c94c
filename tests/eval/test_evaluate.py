"""``mockvox evaluate`` on a registered tiny random v2 voice with one held-out slice: scores, ceiling, table, clips,
chart and tags all reach MLflow. (The floor needs a training config: tests/train/test_training.py covers it.)"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pytest
import soundfile as sf
from mlflow import MlflowClient

from mockvox.audio.io import load_audio
from mockvox.config import compose
from mockvox.eval.cli import format_table, register_cli
from mockvox.eval.run import CHART_ARTIFACT, COLUMNS, TABLE_ARTIFACT, eval_language, evaluate, load_sentences
from mockvox.train.tracking import Tracker
from mockvox.voice import Reference
from tests.conftest import SAMPLES
from tests.eval.test_metrics import tiny_wavlm
from tests.infer import write_v2

PROMPT, HELD_OUT = (SAMPLES / "voice_en.txt").read_text().splitlines()[:2]
SENTENCES = ["Good morning to you.", "The train leaves at 7 tonight."]
MAX_TOKENS = 20
SUMMARY = ("eval/wer", "eval/cer", "eval/speaker_sim", "eval/dnsmos", "eval/dnsmos_sig", "eval/dnsmos_bak",
           "eval/duration_ratio", "eval/capped_share", "eval/silent_share")  # fmt: skip
CEILING = ("eval/ceiling/wer", "eval/ceiling/speaker_sim", "eval/ceiling/dnsmos", "eval/ceiling/duration_ratio")


@pytest.fixture(scope="module")
def voice(tmp_path_factory, whisper_dir) -> dict:
    """One tiny v2 voice with a default English reference and the sample's second sentence as its held-out slice,
    logged on a run and registered as ``voice-eval``."""
    root = tmp_path_factory.mktemp("eval-store")
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    ref, held = root / "slice.wav", root / "held.wav"
    sf.write(ref, audio[sr // 2 : sr // 2 + 5 * sr], sr, subtype="PCM_16")
    sf.write(held, audio[int(5.05 * sr) : int(9.7 * sr)], sr, subtype="PCM_16")
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "voices", str(root / "artifacts"))
    held_out = [Reference(held, HELD_OUT, "en")]
    folder = write_v2(root / "folder", reference=Reference(ref, PROMPT, "en"), holdout=held_out)
    with tracker.run("voice-eval") as run_id:
        model_id = tracker.log_voice(run_id, folder, {}, {}).model_id
    tracker.register(f"models:/{model_id}", "voice-eval")
    overrides = [f"logger.tracking_uri={tracker.tracking_uri}", f"paths.data_dir={root / 'data'}",
                 f"paths.pretrained_dir={root / 'pretrained'}", "asr.model=tiny.en", f"asr.models_dir={whisper_dir}",
                 f"evaluation.max_tokens={MAX_TOKENS}"]  # fmt: skip
    return {"root": root, "model_id": model_id, "run_id": run_id, "overrides": overrides,
            "client": MlflowClient(tracker.tracking_uri)}  # fmt: skip


@pytest.fixture(scope="module")
def result(voice) -> dict:
    return evaluate("models:/voice-eval@latest", compose("eval", voice["overrides"]), SENTENCES)


def test_summary_metrics_land_on_the_source_run(voice, result) -> None:
    assert result["model_id"] == voice["model_id"] and result["run_id"] == voice["run_id"]
    assert result["language"] == "en" and result["metric"] == "wer"
    metrics = voice["client"].get_run(voice["run_id"]).data.metrics
    for key in SUMMARY + CEILING:
        assert key in metrics and math.isfinite(metrics[key]), (key, metrics)
        assert metrics[key] == pytest.approx(result["summary"][key])
    assert not any(key.startswith("eval/floor/") for key in metrics)  # no training config: no floor
    # the tiny GPT never emits EOS: every fragment stops at the cap; the real slice is never capped
    assert metrics["eval/capped_share"] == 1.0 and metrics["eval/ceiling/capped_share"] == 0.0
    voice_rows = [row for row in result["sentences"] if row["voice"] == "voice"]
    assert all(row["tokens"] == [MAX_TOKENS] and row["capped"] for row in voice_rows)
    # the random voice is far from the real speech it is scored beside: the ceiling is the scale
    assert metrics["eval/ceiling/wer"] < 0.35 < metrics["eval/wer"]
    assert metrics["eval/ceiling/speaker_sim"] > metrics["eval/speaker_sim"] + 0.1
    assert metrics["eval/ceiling/dnsmos"] > metrics["eval/dnsmos"]


def test_the_held_out_slice_is_read_by_the_voice_and_scored_as_it_is(result) -> None:
    rows = {(row["voice"], row["line"]): row for row in result["sentences"]}
    assert sorted(rows) == [("real", 2), ("voice", 0), ("voice", 1), ("voice", 2)]
    real, spoken = rows["real", 2], rows["voice", 2]
    assert real["set"] == spoken["set"] == "holdout" and real["text"] == spoken["text"] == HELD_OUT
    assert real["tokens"] == [] and not real["capped"] and 0.5 < real["duration_ratio"] < 2.0
    # the real slice is compared with the speaker's other clip (the reference), not with itself
    assert 0.6 < real["speaker_sim"] < 0.99


def test_table_clips_and_chart_are_artifacts(voice, result, tmp_path) -> None:
    client, run_id = voice["client"], voice["run_id"]
    table = json.loads(Path(client.download_artifacts(run_id, TABLE_ARTIFACT, str(tmp_path))).read_text())
    assert table["columns"] == list(COLUMNS) and len(table["data"]) == len(SENTENCES) + 2
    rows = [dict(zip(table["columns"], values, strict=True)) for values in table["data"]]
    assert [row["text"] for row in rows if row["voice"] == "voice"] == [*SENTENCES, HELD_OUT]
    clips = sorted(a.path for a in client.list_artifacts(run_id, "eval/audio"))
    assert clips == sorted(row["audio"] for row in rows)
    assert clips == ["eval/audio/real-002.wav", "eval/audio/voice-000.wav", "eval/audio/voice-001.wav",
                     "eval/audio/voice-002.wav"]  # fmt: skip
    first = next(row for row in rows if row["audio"] == "eval/audio/voice-000.wav")
    audio, sr = sf.read(client.download_artifacts(run_id, first["audio"], str(tmp_path)))
    assert sr == 32000 and audio.shape[0] / sr == pytest.approx(first["seconds"] + 0.3, abs=1e-3)
    chart = Path(client.download_artifacts(run_id, CHART_ARTIFACT, str(tmp_path)))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_the_registry_version_and_logged_model_carry_the_scores(voice, result) -> None:
    client = voice["client"]
    for tags in (client.get_model_version("voice-eval", "1").tags, client.get_logged_model(voice["model_id"]).tags):
        assert tags["eval/run_id"] == voice["run_id"] and tags["eval/max_tokens"] == str(MAX_TOKENS)
        assert tags["eval/asr_model"] == "tiny.en" and tags["eval/sentences"] == str(len(SENTENCES))
        assert tags["eval/holdout"] == "1" and tags["eval/speaker_encoder"] == "ResemblyzerEncoder"
        assert tags["eval/streaming_mode"] == "whole"
        for key in SUMMARY + CEILING:
            assert float(tags[key]) == pytest.approx(result["summary"][key], abs=1e-4)
    assert result["versions"] == [{"name": "voice-eval", "version": 1, "aliases": []}]
    assert format_table(result).count("\n") >= len(SENTENCES) + len(SUMMARY)


def test_cli_reads_a_sentence_file_and_prints_json(voice, result, tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    (tmp_path / "one.txt").write_text("# a comment\n\nSee you soon!\n", encoding="utf-8")
    args = parser.parse_args(["evaluate", voice["model_id"], "--sentences", str(tmp_path / "one.txt"), "--json"])
    wavlm = tiny_wavlm(tmp_path / "wavlm")  # the encoder is a config choice (here a local WavLM x-vector model)
    # scored as a token stream gives it
    args.overrides = [*voice["overrides"], "evaluation/speaker=wavlm", f"evaluation.speaker.model={wavlm}",
                      "evaluation.speaker.local_files_only=true", "evaluation.chart=false",
                      "evaluation.streaming_mode=token"]  # fmt: skip
    args.func(args)
    printed = json.loads(capsys.readouterr().out)
    tags = voice["client"].get_model_version("voice-eval", "1").tags
    assert tags["eval/speaker_encoder"] == f"WavLMEncoder({wavlm})" and tags["eval/streaming_mode"] == "token"
    assert [row["text"] for row in printed["sentences"] if row["set"] == "sentences"] == ["See you soon!"]
    assert set(SUMMARY) <= set(printed["summary"])
    history = voice["client"].get_metric_history(voice["run_id"], "eval/wer")
    assert len(history) == 2  # the second evaluation adds to the metric's history


def test_bundled_sentences_and_languages() -> None:
    for language in ("en", "zh", "can", "ja", "ko"):
        sentences = load_sentences(language)
        assert len(sentences) >= 5 and any(re.search(r"\d", s) for s in sentences)
        assert len({len(s) for s in sentences}) >= 4  # varied lengths
    assert [eval_language(m) for m in ("all_zh", "yue", "auto_can", "EN", "ja")] == ["zh", "can", "can", "en", "ja"]
    with pytest.raises(ValueError, match="unsupported language"):
        eval_language("auto")
