"""Synthesis with tiny random v2 / v4 voices: output rates and lengths, speed, seeds, splitting, request errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from mockvox.audio.io import load_audio, resample
from mockvox.infer.pipeline import SynthesisError, SynthesisParams, Synthesizer
from mockvox.models.hubert import HubertSSL
from mockvox.text.split import split_text
from mockvox.voice import load_voice
from tests.conftest import SAMPLES
from tests.infer import write_v2, write_v4

PROMPT_TEXT = (SAMPLES / "voice_en.txt").read_text().splitlines()[0]
TEXT = "The weather is lovely today."
NINE = " ".join(f"This is sentence number {w}." for w in "one two three four five six seven eight nine".split())
FAST = SynthesisParams(seed=0, max_tokens=12, sample_steps=2)
SAMPLES_PER_TOKEN = {"v2": 1280, "v4": 1920}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A 5 s cut of the English sample as a float WAV file, plus the whole recording."""
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    sf.write(path, audio[sr // 2 : sr // 2 + 5 * sr], sr, subtype="FLOAT")
    return path, audio, sr


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    root = tmp_path_factory.mktemp("voices")
    return {"v2": load_voice(write_v2(root / "v2")), "v4": load_voice(write_v4(root / "v4"))}


@pytest.fixture(scope="module")
def synths(voices):
    return {version: Synthesizer(voice) for version, voice in voices.items()}


def _run(synth, reference, params=FAST, text=TEXT, lang="en"):
    return synth.synthesize(reference[0], PROMPT_TEXT, "en", text, lang, params)


def _expected_len(version: str, tokens: int, speed: float = 1.0, interval: float = 0.3) -> int:
    rate = 32000 if version == "v2" else 48000
    if speed == 1:
        audio = SAMPLES_PER_TOKEN[version] * tokens
    elif version == "v2":
        audio = 640 * (int(2 * tokens / speed) + 1)  # the text encoder's 50 Hz frames, interpolated
    else:
        audio = 480 * 2 * (int(2 * tokens / speed) + 1)  # the same, upsampled to 100 Hz mel frames
    return audio + round(rate * interval)


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_rate_and_length_follow_the_generated_tokens(synths, reference, version) -> None:
    synth = synths[version]
    prompt = synth.prompt(reference[0], PROMPT_TEXT, "en")
    units = synth.text_units(TEXT, "en", "cut1")
    for n in (12, 20):
        params = replace(FAST, max_tokens=n)
        (tokens,) = synth.semantic_tokens(prompt, units, params, torch.Generator().manual_seed(0))
        sr, audio = _run(synth, reference, params)
        assert sr == (32000 if version == "v2" else 48000) and audio.dtype == np.float32
        assert len(tokens) == n and len(audio) == _expected_len(version, n)
        assert np.abs(audio).max() <= 1 and np.abs(audio[: -round(sr * 0.3)]).max() > 0
        assert not audio[-round(sr * 0.3) :].any()


@pytest.mark.parametrize(("version", "speed"), [("v2", 2.0), ("v2", 0.5), ("v4", 0.5)])
def test_speed_stretches_the_decoded_frames(synths, reference, version, speed) -> None:
    _, audio = _run(synths[version], reference, replace(FAST, speed=speed))
    assert len(audio) == _expected_len(version, FAST.max_tokens, speed)


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_seeded_runs_are_reproducible_and_leave_the_global_rng_alone(synths, reference, version) -> None:
    torch.manual_seed(123)
    _, a = _run(synths[version], reference, replace(FAST, seed=7))
    after_first = torch.rand(3)
    torch.manual_seed(123)
    _, b = _run(synths[version], reference, replace(FAST, seed=7))
    assert torch.equal(torch.rand(3), after_first)  # the process RNG saw no draws from synthesis
    _, c = _run(synths[version], reference, replace(FAST, seed=8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(("split", "batch_size", "expected"), [("cut0", 1, 1), ("cut1", 1, 2), ("cut5", 3, 9)])
def test_split_methods_give_one_fragment_per_piece(synths, reference, split, batch_size, expected) -> None:
    calls = []
    params = replace(FAST, split=split, batch_size=batch_size, max_tokens=11, fragment_interval=0.1)
    frags = list(
        synths["v2"].fragments(reference[0], PROMPT_TEXT, "en", NINE, "en", params, lambda i, n: calls.append((i, n)))
    )
    assert len(frags) == expected == len(split_text(NINE, split, "en"))
    assert calls == [(i + 1, expected) for i in range(expected)]
    assert all(sr == 32000 and len(a) == _expected_len("v2", 11, interval=0.1) for sr, a in frags)


def test_fragments_are_converted_once_and_cached(synths) -> None:
    synth = synths["v2"]
    units = synth.text_units(NINE, "en", "cut1")
    again = synth.text_units(NINE, "en", "cut1")
    assert len(units) == len(again) > 1
    assert all(a.bert is b.bert and a.phones == b.phones for a, b in zip(units, again, strict=True))  # from the cache
    assert synth.phones_and_bert(units[0].text, "en")[1] is units[0].bert


def test_prompt_is_cached_and_built_like_upstream(synths, reference) -> None:
    synth = synths["v4"]
    path, audio, sr = reference
    first = synth.prompt(path, PROMPT_TEXT.rstrip("."), "en")
    assert synth.prompt(path, PROMPT_TEXT.rstrip("."), "en") is first
    assert first.text == PROMPT_TEXT.rstrip(".") + "."  # final punctuation added
    assert synth.prompt(path, "你好", "zh").text == "你好。"
    n16 = len(resample(audio[sr // 2 : sr // 2 + 5 * sr], sr, 16000))
    assert first.codes.shape == (1, HubertSSL.num_frames(n16 + 9600) // 2)  # HuBERT over ref + 0.6 s zeros, 25 Hz
    assert first.bert.shape == (1024, len(first.phones)) and not first.bert.any()  # no BERT: zero features
    assert first.spec.shape[:2] == (1, 1025) and first.fea_ref.shape == (1, 32, 4 * first.codes.shape[1])
    assert first.mel_ref.shape[1] == 100
    cut = audio[sr // 2 : sr // 2 + 5 * sr]
    from_array = synth.prompt((cut, sr), PROMPT_TEXT.rstrip("."), "en")
    assert from_array is not first and torch.equal(from_array.codes, first.codes)
    stereo = synth.prompt((sr, np.stack([cut, cut])), PROMPT_TEXT.rstrip("."), "en")  # [channels, samples]
    assert torch.equal(stereo.codes, first.codes)


def test_loud_reference_is_scaled_down_for_the_spectrogram(synths, reference) -> None:
    _, audio, sr = reference
    cut = audio[sr // 2 : sr // 2 + 5 * sr]
    cut = cut / np.abs(resample(cut, sr, 32000)).max()  # peak exactly 1 at 32 kHz
    spec = {k: synths["v2"].prompt((cut * k, sr), PROMPT_TEXT, "en").spec for k in (0.5, 1.5, 4.0)}
    torch.testing.assert_close(spec[4.0], 4 * spec[0.5], rtol=1e-4, atol=1e-3)  # peak 4: divided by min(2, 4)
    torch.testing.assert_close(spec[1.5], 2 * spec[0.5], rtol=1e-4, atol=1e-3)  # peak 1.5: divided by 1.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ref": 2.0}, "2.00 s long; accepted: 3-10 s"),
        ({"ref": 11.0}, "11.00 s long; accepted: 3-10 s"),
        ({"text_lang": "fr"}, "text language 'fr' is not supported; accepted: all_zh"),
        ({"prompt_lang": "english"}, "prompt language 'english' is not supported"),
        ({"text": "  \n"}, "text is empty"),
        ({"prompt_text": ""}, "prompt text is empty"),
        ({"speed": 0.1}, r"speed 0.1 must be in \[0.25, 4\]"),
        ({"speed": 5.0}, r"speed 5.0 must be in \[0.25, 4\]"),
        ({"top_k": 0}, r"top_k 0 must be in \[1, 1000\]"),
        ({"top_p": 0.0}, r"top_p 0.0 must be in \(0, 1\]"),
        ({"temperature": 0.0}, r"temperature 0.0 must be in \[0.01, 10\]"),
        ({"seed": -2}, r"seed -2 must be in \[-1, 4611686018427387904\]"),
        ({"split": "cut9"}, "accepted: cut0, cut1, cut2, cut3, cut4, cut5"),
    ],
)
def test_bad_requests_raise_a_clear_error(synths, reference, change, message) -> None:
    path, audio, sr = reference
    ref = (audio[: int(change["ref"] * sr)], sr) if "ref" in change else path
    args = {"prompt_text": PROMPT_TEXT, "prompt_lang": "en", "text": TEXT, "text_lang": "en"}
    args.update({k: v for k, v in change.items() if k in args})
    params = replace(FAST, **{k: v for k, v in change.items() if k not in args and k != "ref"})
    with pytest.raises(SynthesisError, match=message):
        synths["v2"].fragments(ref, params=params, **args)  # raised before the first fragment is computed
    assert issubclass(SynthesisError, ValueError)


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_bf16_voice_synthesises(tmp_path, reference, version) -> None:
    folder = (write_v2 if version == "v2" else write_v4)(tmp_path / version)
    synth = Synthesizer(load_voice(folder, precision="bf16"))
    sr, audio = _run(synth, reference)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    assert len(audio) == _expected_len(version, FAST.max_tokens)
