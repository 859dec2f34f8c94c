"""Token-level streaming with tiny random v2 / v4 voices: the same tokens as the whole loop, the same audio away from
the joins, no clicks at them, every mode and alias, and a stream that stops when its reader does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from mockvox.audio.io import load_audio
from mockvox.eval.streaming import chunk_joins, join_quality
from mockvox.infer.pipeline import SynthesisError, SynthesisParams, Synthesizer
from mockvox.infer.streaming import MODES, ChunkPolicy, FrameNoise, StreamConfig, stream_mode
from mockvox.models.t2s_decode import SamplingConfig, decode_steps, generate
from mockvox.voice import load_voice
from tests.conftest import SAMPLES
from tests.infer import tiny_gpt, write_v2, write_v4

PROMPT_TEXT = (SAMPLES / "voice_en.txt").read_text().splitlines()[0]
TEXT = "The weather is lovely today, and the river is calm."
PARAMS = SynthesisParams(seed=5, max_tokens=90, sample_steps=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    sf.write(path, audio[sr // 2 : sr // 2 + 5 * sr], sr, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def synths(tmp_path_factory):
    """Tiny voices whose every network does something: the flows' zero-initialised output layers get random weights
    (a fresh flow is the identity) and the tiny v4 vocoder's upsampling is scaled up (else its biases drown its input,
    and every seed sounds alike)."""
    root = tmp_path_factory.mktemp("voices")
    out = {}
    for version, writer in (("v2", write_v2), ("v4", write_v4)):
        voice = load_voice(writer(root / version))
        torch.manual_seed(11)
        with torch.no_grad():
            if version == "v2":
                for name, p in voice.sovits.flow.named_parameters():
                    if ".post." in name:
                        p.normal_(0, 0.05)
            else:
                for up in voice.vocoder.ups:
                    up.weight.mul_(16)
        out[version] = Synthesizer(voice)
    return out


def _stream(synth, reference, mode, params=PARAMS, text=TEXT):
    chunks = list(synth.stream(reference, PROMPT_TEXT, "en", text, "en", params, mode))
    return chunks, np.concatenate([c.audio for c in chunks])


def test_the_streaming_loop_samples_the_tokens_of_the_whole_loop() -> None:
    model = tiny_gpt(3)
    texts = [(torch.randint(0, 700, (n,)), torch.randn(1024, n)) for n in (7, 12, 9)]
    prompts = torch.randint(0, 1024, (3, 5))
    cfg = SamplingConfig(max_steps=40)
    whole = generate(
        model, [t for t, _ in texts], [b for _, b in texts], prompts, cfg, torch.Generator().manual_seed(1)
    )
    streamed: dict[int, list[int]] = {0: [], 1: [], 2: []}
    steps = decode_steps(model, [t for t, _ in texts], [b for _, b in texts], prompts, cfg,
                         torch.Generator().manual_seed(1))  # fmt: skip
    for step in steps:
        for row, token in zip(step.rows, step.samples.tolist(), strict=True):
            streamed[row].append(token)
    for i, res in enumerate(whole):
        assert streamed[i] == res.sampled.tolist()


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_a_token_stream_carries_the_tokens_and_length_of_the_whole(synths, reference, version) -> None:
    synth = synths[version]
    prompt = synth.prompt(reference, PROMPT_TEXT, "en")
    units = synth.text_units(TEXT, "en", "cut1")
    (tokens,) = synth.semantic_tokens(prompt, units, PARAMS, torch.Generator().manual_seed(PARAMS.seed))
    chunks, audio = _stream(synth, reference, "token")
    whole, whole_audio = _stream(synth, reference, "whole")
    assert len(chunks) >= 4 and len(whole) == 1
    assert chunks[-1].final and chunks[-1].tokens == len(tokens) == PARAMS.max_tokens
    assert chunks[0].tokens == StreamConfig().first_tokens
    assert [c.offset for c in chunks] == list(np.cumsum([0] + [len(c.audio) for c in chunks[:-1]]))
    assert len(audio) == len(whole_audio)  # continuous: not a sample lost or repeated at the joins
    assert set(chunks[0].timing) >= {"text", "prompt", "prefill", "tokens", "decode"}
    assert all(a.elapsed <= b.elapsed for a, b in zip(chunks, chunks[1:], strict=False))


def test_v2_token_stream_is_the_whole_decode_away_from_joins_and_has_no_clicks(synths, reference) -> None:
    synth = synths["v2"]
    _, whole = _stream(synth, reference, "whole")
    for mode in ("token", "fixed"):
        chunks, audio = _stream(synth, reference, mode)
        q = join_quality(audio, whole, synth.sample_rate, chunk_joins(chunks))
        assert q.joins >= 3
        assert q.mel_l1_away < 0.01, q  # log-mel L1: 0.01 is far below audible (nats per band)
        assert q.mel_l1_joins < 0.05, q
        assert q.join_jump <= 1.25 * q.whole_jump + 0.01, q  # joins jump no more than the whole decode there
    # the same cut without context, look-ahead or fade does fail these limits: they measure something
    naive = StreamConfig(mode="fixed", lookahead=0, fade_frames=0, context_frames=0)
    chunks, audio = _stream(synth, reference, naive)
    q = join_quality(audio, whole, synth.sample_rate, chunk_joins(chunks))
    assert q.mel_l1_joins > 0.05 or q.join_jump > 1.25 * q.whole_jump + 0.01, q


def test_v4_stream_is_continuous_and_as_close_to_the_whole_as_another_seed(synths, reference) -> None:
    synth = synths["v4"]
    _, whole = _stream(synth, reference, "whole")
    _, other_seed = _stream(synth, reference, "whole", replace(PARAMS, seed=6))
    chunks, audio = _stream(synth, reference, "token")
    q = join_quality(audio, whole, synth.sample_rate, chunk_joins(chunks))
    seed = join_quality(other_seed, whole, synth.sample_rate, chunk_joins(chunks))
    assert np.abs(audio).max() > 0.1 and seed.mel_l1 > 0.1  # audible and seed-dependent: the figures mean something
    assert q.length_diff == 0 and q.joins >= 3
    assert q.mel_l1 <= 1.5 * seed.mel_l1, (q, seed)  # streaming costs less than a different seed does
    assert q.join_jump <= 2 * max(seed.join_jump, q.whole_jump) + 0.01, (q, seed)


def test_fragment_and_whole_modes_are_the_non_streaming_synthesis(synths, reference) -> None:
    synth = synths["v2"]
    text = "One sentence here. Another one there. And a third. A fourth one. The fifth."
    params = replace(PARAMS, max_tokens=15, split="cut5")
    frags = [a for _, a in synth.fragments(reference, PROMPT_TEXT, "en", text, "en", params)]
    chunks, audio = _stream(synth, reference, "fragment", params, text)
    assert len(chunks) == len(frags) == 5 and all(c.final for c in chunks)
    assert all(np.array_equal(c.audio, f) for c, f in zip(chunks, frags, strict=True))
    _, whole = synth.synthesize(reference, PROMPT_TEXT, "en", text, "en", params)
    assert np.array_equal(_stream(synth, reference, "whole", params, text)[1], whole)
    tokens, _ = _stream(synth, reference, 2, params, text)  # upstream's streaming_mode 2
    assert [c.fragment for c in tokens if c.final] == [0, 1, 2, 3, 4]


def test_modes_and_upstream_aliases() -> None:
    assert [stream_mode(i) for i in range(4)] == list(MODES)
    assert stream_mode("2") == stream_mode("TOKEN") == "token" and stream_mode(True) == "fragment"
    assert stream_mode(False) == "whole"
    for bad in ("4", "stream", -1):
        with pytest.raises(ValueError, match="streaming_mode .* accepted: whole, fragment, token, fixed"):
            stream_mode(bad)
    with pytest.raises(ValueError, match="first_tokens 0 must be in"):
        StreamConfig(first_tokens=0)
    with pytest.raises(ValueError, match="unknown stream settings: colour"):
        StreamConfig.from_mapping({"colour": 1})


def test_bad_stream_requests_fail_before_any_audio(synths, reference) -> None:
    synth = synths["v2"]
    with pytest.raises(SynthesisError, match="streaming_mode"):
        synth.stream(reference, PROMPT_TEXT, "en", TEXT, "en", PARAMS, "sometimes")
    with pytest.raises(SynthesisError, match="text language"):
        synth.stream(reference, PROMPT_TEXT, "en", TEXT, "xx", PARAMS, "token")


def test_token_cuts_fall_between_two_silence_like_tokens() -> None:
    silence = torch.full((1025,), -0.5)  # cosine similarity to the mute token
    silence[7] = 1.0  # token 7 is "silence"
    policy = ChunkPolicy(StreamConfig(first_tokens=4, chunk_tokens=4, max_chunk_tokens=12, lookahead=1), silence)
    tokens = [1] * 5
    assert policy.cut(tokens) == 4  # the first chunk: as soon as 4 tokens are ready
    policy.done = 4
    tokens += [1, 1, 1, 7, 7, 1]
    assert policy.cut(tokens) == 9  # between the two 7s (tokens 8 and 9)
    policy.done = 9
    tokens += [1] * 12
    assert policy.cut(tokens) == len(tokens) - 1  # no silence: cut at max_chunk_tokens, keeping the look-ahead


def test_frame_noise_depends_only_on_the_frame() -> None:
    like = torch.zeros(1)
    a, b = FrameNoise(3, 8), FrameNoise(3, 8)
    first = a.take(0, 10, like)
    assert torch.equal(b.take(0, 300, like)[:, :, :10], first) and torch.equal(a.take(5, 10, like), first[:, :, 5:])


def test_a_closed_stream_stops_sampling_within_a_chunk(synths, reference) -> None:
    synth = synths["v2"]
    steps = []
    hook = synth.voice.gpt.ar_predict_layer.register_forward_hook(lambda *_: steps.append(1))
    try:
        chunks = synth.stream(reference, PROMPT_TEXT, "en", TEXT, "en", replace(PARAMS, max_tokens=400), "token")
        next(chunks)
        chunks.close()
    finally:
        hook.remove()
    cfg = StreamConfig()
    assert len(steps) == cfg.first_tokens + cfg.lookahead  # nothing sampled after the reader left


@pytest.mark.parametrize("speed", [0.7, 1.5])
def test_a_v2_stream_at_another_speed_keeps_the_whole_length_and_sound(synths, reference, speed) -> None:
    synth, params = synths["v2"], replace(PARAMS, speed=speed)
    chunks, audio = _stream(synth, reference, "token", params)
    _, whole = _stream(synth, reference, "whole", params)
    q = join_quality(audio, whole, synth.sample_rate, chunk_joins(chunks))
    assert len(audio) == len(whole) and q.joins >= 3
    assert q.mel_l1 < 0.01 and q.join_jump <= 1.25 * q.whole_jump + 0.01, q  # the fixed grid: prefixes agree
