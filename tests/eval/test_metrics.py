"""The evaluation metrics with their real models (Whisper, resemblyzer, DNSMOS) on espeak-ng speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mockvox.data.asr import AsrConfig, Transcriber
from mockvox.eval import (
    ResemblyzerEncoder,
    SpeakerEncoder,
    duration_ratio,
    intelligibility,
    normalize_text,
    quality,
    speaker_similarity,
)
from tests.conftest import espeak

FOX = "The quick brown fox jumps over the lazy dog near the river bank."
MARKET = "Every morning she walks to the market to buy fresh bread and fruit."


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, tuple[np.ndarray, int]]:
    """espeak-ng clips: two sentences by the default voice, the second also by a female variant."""
    root = tmp_path_factory.mktemp("eval-clips")
    spoken = {"fox": (FOX, "en-us"), "market": (MARKET, "en-us"), "market_f3": (MARKET, "en-us+f3")}
    return {
        name: sf.read(espeak(text, root / f"{name}.wav", voice), dtype="float32")
        for name, (text, voice) in spoken.items()
    }


@pytest.fixture(scope="module")
def transcriber(whisper_dir) -> Transcriber:
    """The packaged ``tiny.en`` Whisper model."""
    return Transcriber(AsrConfig(model="tiny.en", models_dir=str(whisper_dir)))


def test_text_is_normalised_the_same_way_for_words_and_characters():
    assert normalize_text("  Hello,   WORLD! It's\tfine.", "en") == "hello world its fine"
    assert normalize_text("你好， 世界！", "zh") == "你好世界"
    assert normalize_text("こんにちは、 世界。", "ja") == "こんにちは世界"


def test_right_text_scores_a_low_wer_and_wrong_text_a_high_one(clips, transcriber):
    audio, sr = clips["fox"]
    right = intelligibility(audio, sr, FOX, "en", transcriber)
    wrong = intelligibility(audio, sr, "Seven purple elephants sang loudly in a tiny kitchen.", "en", transcriber)
    assert right["metric"] == "wer" and right["wer"] < 0.3, right
    assert wrong["wer"] > 0.7, wrong
    assert right["transcript"] == wrong["transcript"]


def test_the_same_voice_is_more_similar_than_another_voice(clips):
    fox, sr = clips["fox"]
    same = speaker_similarity(fox, sr, *clips["market"])
    other = speaker_similarity(fox, sr, *clips["market_f3"])
    assert same > other + 0.1, (same, other)
    assert speaker_similarity(fox, sr, fox, sr) == pytest.approx(1.0, abs=1e-5)


def test_the_default_encoder_is_a_speaker_encoder():
    assert isinstance(ResemblyzerEncoder(), SpeakerEncoder)


def test_clean_speech_scores_a_higher_dnsmos_than_noisy_speech(clips):
    audio, sr = clips["fox"]
    noisy = audio + 0.05 * np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    clean, degraded = quality(audio, sr), quality(noisy, sr)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert clean["dnsmos_ovrl"] > degraded["dnsmos_ovrl"] + 0.5, (clean, degraded)
    assert clean["dnsmos_bak"] > degraded["dnsmos_bak"]


def test_duration_ratio_compares_against_the_language_speaking_rate(clips):
    assert duration_ratio(4.0, "one two three four five six seven eight nine ten", "en") == pytest.approx(1.0)
    assert duration_ratio(2.0, "你好世界，今天天气很好。", "zh") == pytest.approx(2.0 / (10 / 5.2))
    audio, sr = clips["fox"]
    assert 0.5 < duration_ratio(len(audio) / sr, FOX, "en") < 2.0
    with pytest.raises(ValueError):
        duration_ratio(1.0, "...", "en")


def tiny_wavlm(folder: Path) -> Path:
    """A small random ``WavLMForXVector`` with its feature extractor, saved as a hub model folder would be."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    config = WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, tdnn_dim=(16, 16), tdnn_kernel=(3, 1), tdnn_dilation=(1, 1),
                         xvector_output_dim=8, num_buckets=32, max_bucket_distance=100)  # fmt: skip
    WavLMForXVector(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True).save_pretrained(folder)
    return folder


def test_a_wavlm_encoder_from_a_model_folder_plugs_in(clips, tmp_path):
    from mockvox.eval.metrics import WavLMEncoder, speaker_encoder

    folder = tiny_wavlm(tmp_path / "wavlm")
    encoder = speaker_encoder("mockvox.eval.metrics.WavLMEncoder", model=str(folder), local_files_only=True)
    assert isinstance(encoder, WavLMEncoder) and isinstance(encoder, SpeakerEncoder)
    fox = encoder.embed(*clips["fox"])
    assert fox.shape == (8,) and np.isfinite(fox).all()
    assert speaker_similarity(*clips["fox"], *clips["fox"], encoder=encoder) == pytest.approx(1.0)
    assert -1.0 <= speaker_similarity(*clips["fox"], *clips["market"], encoder=encoder) < 1.0
    with pytest.raises(OSError):  # nothing to download here: a missing local model says so
        WavLMEncoder(str(tmp_path / "missing"), local_files_only=True)
