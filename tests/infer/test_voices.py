"""One path from a voice id to speech: registry lookup, download cache, default reference, the resident cache."""

from __future__ import annotations

import copy
import gc
import threading
import weakref

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from mockvox import cli
from mockvox.audio.io import load_audio
from mockvox.infer.pipeline import SynthesisError, SynthesisParams, Synthesizer
from mockvox.infer.voices import VoiceCache, VoicesBusy, VoiceSource, open_voice, voice_bytes
from mockvox.models.lora import add_lora
from mockvox.train.tracking import Tracker
from mockvox.voice import Reference, load_voice
from tests.conftest import SAMPLES
from tests.infer import tiny_v4, write_v2, write_v4

PROMPT = (SAMPLES / "voice_en.txt").read_text().splitlines()[0]
FAST = SynthesisParams(seed=3, max_tokens=10)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite MLflow store with two registered tiny v2 voices (``a`` with a default reference, ``b`` without)."""
    root = tmp_path_factory.mktemp("store")
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    ref = root / "slice.wav"
    sf.write(ref, audio[sr // 2 : sr // 2 + 5 * sr], sr, subtype="PCM_16")
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "voices", str(root / "artifacts"))
    ids = {}
    for name, reference in (("a", Reference(ref, PROMPT, "en")), ("b", None)):
        folder = write_v2(root / "folders" / name, reference=reference)
        with tracker.run(f"voice-{name}") as run_id:
            ids[name] = tracker.log_voice(run_id, folder, {}, {}).model_id
        tracker.register(f"models:/{ids[name]}", f"voice-{name}")
    source = VoiceSource(tracker, root / "data" / "models", root / "pretrained")
    return {"root": root, "source": source, "ids": ids, "ref": ref, "uri": tracker.tracking_uri}


def test_names_resolve_to_one_download(store) -> None:
    source, model_id = store["source"], store["ids"]["a"]
    folder = source.folder(model_id)
    assert folder == store["root"] / "data" / "models" / model_id and (folder / "reference.wav").is_file()
    stamp = (folder / "mockvox.yaml").stat().st_mtime_ns
    for ref in ("models:/voice-a@latest", "models:/voice-a/1", f"models:/{model_id}"):
        assert source.folder(ref) == folder
    assert (folder / "mockvox.yaml").stat().st_mtime_ns == stamp  # downloaded once


def test_text_alone_speaks_with_the_default_reference(store) -> None:
    synth = open_voice(store["ids"]["a"], store["source"])
    assert synth.voice.reference.text == PROMPT and synth.voice.reference.language == "en"
    sr, spoken = synth.speak("Good morning to you.", params=FAST)
    _, explicit = synth.synthesize(store["ref"], PROMPT, "en", "Good morning to you.", "en", FAST)
    assert sr == 32000 and spoken.size > 0
    np.testing.assert_array_equal(spoken, explicit)
    with pytest.raises(SynthesisError, match="no default reference"):
        open_voice(store["ids"]["b"], store["source"]).speak("Hello.", "en", FAST)


def test_cli_pyfunc_and_cache_give_the_same_audio(store, tmp_path) -> None:
    model_id, text = store["ids"]["a"], "The weather is lovely today."
    cached = VoiceCache(store["source"]).get(model_id)
    _, want = cached.synthesize(store["ref"], PROMPT, "en", text, "en", FAST)
    out = tmp_path / "cli.wav"
    overrides = [f"logger.tracking_uri={store['uri']}", f"paths.data_dir={store['root'] / 'data'}"]
    argv = ["inference", model_id, str(store["ref"]), PROMPT, text, "--promptLanguage", "en", "--targetLanguage",
            "en", "--seed", "3", "--max_tokens", "10", "-o", str(out), *overrides]  # fmt: skip
    assert cli.main(argv) == 0
    got_cli, _ = sf.read(out, dtype="float32")
    model = mlflow.pyfunc.load_model(f"models:/{model_id}")
    row = {"text": text, "ref_audio": str(store["ref"]), "prompt_text": PROMPT, "prompt_lang": "en", "text_lang": "en"}
    got_pyfunc = model.predict(pd.DataFrame([row]), params={"seed": 3, "max_tokens": 10})["audio"][0]
    np.testing.assert_array_equal(got_pyfunc, want)
    assert got_cli.shape == want.shape
    np.testing.assert_allclose(got_cli, want, atol=2 / 32768)  # the WAV is 16-bit (scaled by 32767, read /32768)


def _alive(cache: VoiceCache, model_id: str):
    return weakref.ref(cache.get(model_id).voice.gpt)


def test_cache_evicts_by_count_and_frees_the_weights(store) -> None:
    a, b = store["ids"]["a"], store["ids"]["b"]
    cache = VoiceCache(store["source"], max_voices=1)
    gpt_a = _alive(cache, a)
    assert a in cache and len(cache) == 1
    assert cache.get("models:/voice-a@latest") is cache.get(a)  # names of one voice share one entry
    cache.get(b)
    gc.collect()
    assert a not in cache and b in cache and len(cache) == 1
    assert gpt_a() is None  # nothing holds the evicted voice's weights any more
    cache.clear()
    assert len(cache) == 0 and cache.resident_bytes == 0


def test_pinned_voices_are_never_evicted_and_bound_what_loads(store) -> None:
    """A stream pins its voice: the voices in memory never exceed the cache's bound, whatever streams hold."""
    a, b = store["ids"]["a"], store["ids"]["b"]
    cache = VoiceCache(store["source"], max_voices=1)
    held = cache.get(a, pin=True)
    with pytest.raises(VoicesBusy, match="in use by streams"):
        cache.get(b)  # no room: the one resident voice streams
    assert a in cache and b not in cache and len(cache) == 1
    assert cache.get(a, pin=True) is held  # a second stream of the same voice shares it
    cache.unpin(a)
    cache.unpin(a)
    cache.get(b)
    assert a not in cache and b in cache and len(cache) == 1


def test_cache_evicts_by_bytes(store) -> None:
    a, b = store["ids"]["a"], store["ids"]["b"]
    one = voice_bytes(open_voice(a, store["source"]).voice)
    cache = VoiceCache(store["source"], max_voices=8, max_bytes=int(one * 1.5))
    cache.get(a)
    assert cache.resident_bytes == one
    cache.get(b)
    assert a not in cache and b in cache and cache.resident_bytes <= int(one * 1.5)
    small = VoiceCache(store["source"], max_voices=8, max_bytes=one // 2)
    assert small.get(a).voice is not None and len(small) == 1  # larger than the budget: held alone
    small.get(b)
    assert len(small) == 1 and b in small


def test_concurrent_requests_load_a_voice_once(store) -> None:
    cache, got = VoiceCache(store["source"], max_voices=2), []
    threads = [threading.Thread(target=lambda: got.append(cache.get(store["ids"]["a"]))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(s is got[0] for s in got)


def _v4_pair(root):
    """Two v4 voices trained from one base: the same ``sovits_base.pth`` content, their own adapters and wns1."""
    base, model_a = tiny_v4()
    model_b = add_lora(copy.deepcopy(base), rank=4)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model_b.named_parameters():
            if "lora_B" in name or name.startswith("wns1."):
                p.copy_((p + 0.05 * torch.randn(p.shape, generator=gen)).half().float())
    return {
        name: write_v4(root / name, sovits=model, sovits_base=base) for name, model in (("a", model_a), ("b", model_b))
    }


@pytest.fixture(scope="module")
def v4_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("v4store")
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "voices", str(root / "artifacts"))
    ids = {}
    for name, folder in _v4_pair(root / "folders").items():
        with tracker.run(f"v4-{name}") as run_id:
            ids[name] = tracker.log_voice(run_id, folder, {}, {}).model_id
    return {"source": VoiceSource(tracker, root / "data" / "models", root / "pretrained"), "ids": ids, "root": root}


def _dit_weight(voice):
    return voice.sovits.cfm.estimator.transformer_blocks[0].ff.ff[0][0].weight


def test_two_v4_voices_on_one_base_hold_the_base_once(v4_store, store) -> None:
    source, ids = v4_store["source"], v4_store["ids"]
    alone = {k: load_voice(source.folder(i), source.pretrained_dir) for k, i in ids.items()}  # merged, own copies
    cache = VoiceCache(source, max_voices=4)
    a = cache.get(ids["a"])
    one = cache.resident_bytes
    b = cache.get(ids["b"])
    both = cache.resident_bytes
    assert _dit_weight(a.voice).data_ptr() == _dit_weight(b.voice).data_ptr()  # the base's tensors: one memory
    assert _dit_weight(a.voice).data_ptr() != _dit_weight(alone["a"]).data_ptr()
    base_cfm = sum(
        t.numel() * t.element_size() for n, t in alone["a"].sovits.cfm.state_dict().items() if ".attn." not in n
    )
    added = both - one  # what voice b added: its GPT, adapters and fully trained modules, not the base
    assert added < voice_bytes(alone["b"]) - base_cfm, (added, voice_bytes(alone["b"]), base_cfm)
    assert both < voice_bytes(alone["a"], alone["b"])
    text = "The weather is lovely today."
    for name, synth in (("a", a), ("b", b)):
        q = synth.voice.sovits.cfm.estimator.transformer_blocks[0].attn.to_q  # adapter over the shared layer
        merged = alone[name].sovits.cfm.estimator.transformer_blocks[0].attn.to_q.weight
        torch.testing.assert_close(q.base.weight + q.scale * q.lora_b @ q.lora_a, merged)  # its own adapters
        assert torch.equal(synth.voice.sovits.wns1.pre.weight, alone[name].sovits.wns1.pre.weight)  # its own wns1
        _, got = synth.synthesize(store["ref"], PROMPT, "en", text, "en", FAST)
        _, want = Synthesizer(alone[name]).synthesize(store["ref"], PROMPT, "en", text, "en", FAST)
        np.testing.assert_allclose(got, want, atol=1e-4)  # unmerged adapters = merged weights up to rounding
    assert not torch.equal(a.voice.sovits.wns1.pre.weight, b.voice.sovits.wns1.pre.weight)
    base = weakref.ref(a.voice.sovits.__dict__["_shared_base"])
    del a, b, alone, synth, q
    cache.clear()
    gc.collect()
    assert base() is None  # the last voice on the base gone: the base is freed too


def test_threads_setting_applies_to_the_process() -> None:
    import torch
    from omegaconf import OmegaConf

    from mockvox.infer.voices import apply_threads

    before = torch.get_num_threads()
    try:
        apply_threads(OmegaConf.create({"threads": 1}))
        assert torch.get_num_threads() == 1
        apply_threads(OmegaConf.create({"threads": 0}))  # 0: leave torch's choice alone
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads must be >= 0"):
            apply_threads(OmegaConf.create({"threads": -2}))
    finally:
        torch.set_num_threads(before)
