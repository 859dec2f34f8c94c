"""v2Pro / v2ProPlus voices: folders with the SV network, synthesis with the fused reference embedding, streaming,
and one SV network shared by resident voices."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from mockvox.audio.io import load_audio, resample
from mockvox.checkpoints import load_sovits_checkpoint
from mockvox.eval.streaming import chunk_joins, join_quality
from mockvox.infer.pipeline import SynthesisParams, Synthesizer
from mockvox.infer.voices import VoiceCache, VoiceSource, voice_bytes
from mockvox.train.tracking import Tracker
from mockvox.voice import PRETRAINED, load_voice, read_voice_config, write_voice
from tests.conftest import SAMPLES
from tests.infer import SV_KWARGS, V2_KWARGS, tiny_gpt, tiny_sv, tiny_v2, tiny_v2pro, write_v2pro

PRO = ("v2Pro", "v2ProPlus")
PROMPT_TEXT = (SAMPLES / "voice_en.txt").read_text().splitlines()[0]
TEXT = "The weather is lovely today, and the river is calm."
PARAMS = SynthesisParams(seed=5, max_tokens=90)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    sf.write(path, audio[sr // 2 : sr // 2 + 5 * sr], sr, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pro")
    return {version: write_v2pro(root / version, version) for version in PRO}


@pytest.fixture(scope="module")
def synths(folders):
    """Loaded Pro voices whose flows do something (a fresh flow's zero-initialised output layers make it the
    identity), as in test_streaming."""
    out = {}
    for version, folder in folders.items():
        voice = load_voice(folder)
        torch.manual_seed(11)
        with torch.no_grad():
            for name, p in voice.sovits.flow.named_parameters():
                if ".post." in name:
                    p.normal_(0, 0.05)
        out[version] = Synthesizer(voice)
    return out


@pytest.mark.parametrize("version", PRO)
def test_a_pro_folder_holds_a_webui_export_and_loads_with_its_sv_network(folders, version) -> None:
    folder = folders[version]
    config = read_voice_config(folder)
    assert config["sv"] == {"file": "sv.ckpt", "kwargs": {"m_channels": 8, "num_blocks": [1, 1, 1, 1]}}
    assert (folder / "sovits.pth").read_bytes()[:2] == {"v2Pro": b"05", "v2ProPlus": b"06"}[version]
    ckpt = load_sovits_checkpoint(folder / "sovits.pth")
    assert ckpt.version.model == version and not any(k.startswith("enc_q.") for k in ckpt.weight)
    assert ckpt.config["model"]["version"] == version
    voice = load_voice(folder)
    assert voice.version == voice.sovits.version == version and voice.sample_rate == 32000
    state = tiny_sv().net.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in voice.sv.net.state_dict().items())
    assert voice.sv(torch.zeros(1, 32000)).shape == (1, 2560)


@pytest.mark.parametrize("version", PRO)
def test_the_prompt_embedding_fuses_the_sv_embedding_of_the_reference(synths, reference, version) -> None:
    synth = synths[version]
    voice = synth.voice
    prompt = synth.prompt(reference, PROMPT_TEXT, "en")
    audio, sr = load_audio(reference)
    ref32 = torch.from_numpy(resample(audio, sr, 32000))[None]  # [1, N]; below full scale: no peak limiting
    sv = voice.sv(ref32)
    with torch.no_grad():
        want = voice.sovits.reference_embedding(prompt.spec, sv_emb=sv)
        without = voice.sovits.reference_embedding(prompt.spec, sv_emb=torch.zeros_like(sv))
    assert prompt.ge.shape == (1, 32, 1)
    torch.testing.assert_close(prompt.ge, want)
    assert not torch.allclose(prompt.ge, without)  # the SV embedding matters
    decoded = voice.sovits.style([prompt.spec, prompt.spec], [sv, sv])  # the mean after the PReLU of equal refs
    torch.testing.assert_close(decoded, want)


@pytest.mark.parametrize("version", PRO)
def test_a_pro_voice_speaks_at_32khz_deterministically(synths, reference, version) -> None:
    synth = synths[version]
    sr, audio = synth.synthesize(reference, PROMPT_TEXT, "en", TEXT, "en", PARAMS)
    _, again = synth.synthesize(reference, PROMPT_TEXT, "en", TEXT, "en", PARAMS)
    _, other = synth.synthesize(reference, PROMPT_TEXT, "en", TEXT, "en", SynthesisParams(seed=6, max_tokens=90))
    assert sr == synth.sample_rate == 32000 and audio.dtype == np.float32
    assert audio.size >= PARAMS.max_tokens * 1280 and np.abs(audio).max() > 1e-3  # 1280 samples per 25 Hz token
    np.testing.assert_array_equal(audio, again)
    assert not np.array_equal(audio, other)


@pytest.mark.parametrize("version", PRO)
def test_a_pro_token_stream_is_the_whole_decode_away_from_joins(synths, reference, version) -> None:
    synth = synths[version]

    def stream(mode):
        chunks = list(synth.stream(reference, PROMPT_TEXT, "en", TEXT, "en", PARAMS, mode))
        return chunks, np.concatenate([c.audio for c in chunks])

    _, whole = stream("whole")
    chunks, audio = stream("token")
    assert len(chunks) >= 4 and chunks[-1].final and len(audio) == len(whole)
    q = join_quality(audio, whole, synth.sample_rate, chunk_joins(chunks))
    assert q.joins >= 3
    assert q.mel_l1_away < 0.01, q
    assert q.mel_l1_joins < 0.05, q


def test_two_resident_pro_voices_share_one_sv_network(tmp_path) -> None:
    pretrained = tmp_path / "pretrained"
    (pretrained / PRETRAINED["sv"]).parent.mkdir(parents=True)
    torch.save(tiny_sv().net.state_dict(), pretrained / PRETRAINED["sv"])  # a bare state dict, as the official file
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "voices", str(tmp_path / "artifacts"))
    ids = {}
    for version in PRO:
        folder = write_v2pro(tmp_path / "folders" / version, version, sv="pretrained")
        assert read_voice_config(folder)["sv"] == {"pretrained": PRETRAINED["sv"], "kwargs": {**SV_KWARGS,
                                                   "num_blocks": [1, 1, 1, 1]}}  # fmt: skip
        with tracker.run(version) as run_id:
            ids[version] = tracker.log_voice(run_id, folder, {}, {}).model_id
    cache = VoiceCache(VoiceSource(tracker, tmp_path / "data" / "models", pretrained), max_voices=4)
    a, b = (cache.get(ids[v]).voice for v in PRO)
    assert a.sv is b.sv and a.sovits is not b.sovits
    alone = load_voice(cache.source.folder(ids["v2Pro"]), pretrained)
    assert alone.sv is not a.sv  # without shared parts, a voice has its own
    sv_bytes = sum(t.numel() * t.element_size() for t in [*a.sv.parameters(), *a.sv.buffers()])
    assert cache.resident_bytes == voice_bytes(a, b) <= voice_bytes(a) + voice_bytes(b) - sv_bytes  # held once
    assert voice_bytes(a) >= voice_bytes(alone) > 0 and sv_bytes > 0


def test_sv_belongs_to_pro_folders_and_the_generator_must_match_the_version(tmp_path) -> None:
    base = dict(gpt=tiny_gpt(), sovits_kwargs=V2_KWARGS, bert=None)
    with pytest.raises(ValueError, match="sv belongs to v2Pro and v2ProPlus model folders; pass None for v2"):
        write_voice(tmp_path / "a", version="v2", sovits=tiny_v2(), sv=tiny_sv(), **base)
    with pytest.raises(ValueError, match=r"a v2Pro voice needs a SynthesizerTrn\(version='v2Pro'\), got a "):
        write_voice(tmp_path / "b", version="v2Pro", sovits=tiny_v2(), **base)
    with pytest.raises(ValueError, match="sv must be a SpeakerEncoder, 'pretrained' or None"):
        write_voice(tmp_path / "c", version="v2Pro", sovits=tiny_v2pro(), sv="mine", **base)
    folder = write_v2pro(tmp_path / "d")
    text = (folder / "mockvox.yaml").read_text().replace("sv:\n  file: sv.ckpt", "nosv:\n  file: sv.ckpt")
    (folder / "mockvox.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"missing or malformed entries \['sv'\]"):
        read_voice_config(folder)
