"""Feature extraction on a real tiny dataset (slices of samples/voice_*.ogg) with tiny random HuBERT/SoVITS/BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers

from mockvox.audio.io import load_audio, resample, write_wav
from mockvox.data.features import (
    Extractors,
    FeatureExtractionError,
    extract_features,
    extractors_tag,
    semantic_codes,
)
from mockvox.data.ids import new_file_id
from mockvox.data.store import DatasetStore, write_json_atomic
from mockvox.models.hubert import HubertSSL, scale_for_hubert, scale_for_wav32k
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.text.bert import bert_feature, load_bert
from tests.conftest import SAMPLES

SR = 32000
EN_CUTS = [(0.0, 4.5), (4.5, 10.0), (10.0, 15.7)]  # seconds of voice_en.ogg, one sentence each
ZH_CUTS = [(0.0, 3.5)]


def tiny_hubert() -> HubertSSL:
    torch.manual_seed(0)
    cfg = transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7
    )
    return HubertSSL(transformers.HubertModel(cfg).eval())


def tiny_sovits(version: str = "v2") -> torch.nn.Module:
    """A tiny SoVITS (ssl_dim 32) whose codebook is random (a fresh one is all zeros until k-means)."""
    torch.manual_seed(1)
    net = SynthesizerTrn.tiny() if version == "v2" else SynthesizerTrnV3.tiny()
    book = net.quantizer.vq.layers[0]._codebook
    with torch.no_grad():
        book.embed.copy_(torch.randn_like(book.embed))
        book.inited.fill_(1.0)
    return net.eval()


def build_dataset(root: Path, language: str = "en", cuts=EN_CUTS, denoised: bool = False) -> tuple[DatasetStore, str]:
    """A dataset store with one dataset made by hand: slices of samples/voice_{language}.ogg + their text."""
    store, file_id = DatasetStore(root), new_file_id()
    audio, _ = load_audio(SAMPLES / f"voice_{language}.ogg", SR)
    lines = (SAMPLES / f"voice_{language}.txt").read_text(encoding="utf-8").splitlines()
    results = []
    for (start_s, end_s), text in zip(cuts, lines, strict=False):
        start, end = int(start_s * SR), min(int(end_s * SR), len(audio))
        key = f"{start:010d}_{end:010d}"
        write_wav(store.sliced_dir(file_id) / f"{key}.wav", audio[start:end], SR)
        if denoised:  # a stand-in "denoised" copy: half the amplitude
            write_wav(store.denoised_dir(file_id) / f"{key}.wav", 0.5 * audio[start:end], SR)
        results.append({"key": key, "text": text})
    write_json_atomic(store.output_json(file_id), {"language": language, "denoised": denoised, "results": results})
    return store, file_id


def add_version(store: DatasetStore, file_id: str, version: str) -> None:
    path = store.versions_file(file_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"version": version, "operation": "test"}) + "\n")


def count_calls(module: torch.nn.Module, fail_at: int | None = None) -> list[int]:
    """Count forward calls of ``module`` (raising RuntimeError at call number ``fail_at``)."""
    calls = [0]

    def hook(*_):
        calls[0] += 1
        if calls[0] == fail_at:
            raise RuntimeError("simulated crash")

    module.register_forward_hook(hook)
    return calls


@pytest.fixture(scope="module")
def extractors() -> Extractors:
    return Extractors.create(tiny_hubert(), tiny_sovits("v2"))


@pytest.fixture(scope="module")
def en_features(tmp_path_factory, extractors):
    root = tmp_path_factory.mktemp("feat")
    store, file_id = build_dataset(root / "data")
    add_version(store, file_id, "abc123")
    events = []
    folder = extract_features(store, file_id, extractors, root / "cache", progress=lambda *e: events.append(e))
    return store, file_id, folder, events


def test_layout_and_contents(en_features, extractors):
    store, file_id, folder, events = en_features
    assert folder.parent == folder.parents[1] / file_id and folder.name == f"abc123-sliced-{extractors.tag}"
    meta = json.loads((folder / "meta.json").read_text())
    results = store.read_output(file_id)["results"]
    keys = [r["key"] for r in results]
    assert meta["keys"] == keys and meta["skipped"] == {} and meta["audio"] == "sliced" and meta["language"] == "en"
    name2text = json.loads((folder / "name2text.json").read_text())
    assert [e["key"] for e in name2text] == keys and name2text[1]["word2ph"] is None
    assert {"K", "W", "IH1"} <= set(name2text[1]["phones"])  # "quick brown fox"
    assert not (folder / "bert").exists()  # English: no BERT files
    assert ("text", 3, 3) in events and ("features", 3, 3) in events
    semantic = json.loads((folder / "name2semantic.json").read_text())
    for key in keys:
        raw, _ = load_audio(store.sliced_dir(file_id) / f"{key}.wav", SR)
        wav32k, sr = sf.read(folder / "wav32k" / f"{key}.wav", dtype="int16")
        assert sr == SR and len(wav32k) == len(raw)
        assert np.abs(wav32k.astype(np.float64) - scale_for_wav32k(raw)).max() <= 1.0  # int16 truncation
        ssl = torch.load(folder / "cnhubert" / f"{key}.pt")
        wav16k = resample(scale_for_hubert(raw), SR, 16000)
        assert ssl.dtype == torch.float32 and ssl.shape == (1, 32, HubertSSL.num_frames(len(wav16k)))
        with torch.no_grad():
            torch.testing.assert_close(ssl, extractors.hubert(torch.from_numpy(wav16k)))
            codes = extractors.sovits.extract_latent(ssl)[0, 0].tolist()
        assert semantic[key] == codes and len(codes) == ssl.shape[-1] // 2
    assert len({c for codes in semantic.values() for c in codes}) > 1


def test_cached_until_the_dataset_version_changes(tmp_path):
    store, file_id = build_dataset(tmp_path / "data", cuts=EN_CUTS[:1])
    extractors = Extractors(tiny_hubert(), tiny_sovits("v2"), tag="t")
    calls = count_calls(extractors.hubert)
    first = extract_features(store, file_id, extractors, tmp_path / "cache")
    assert calls[0] == 1 and first.name.startswith("h")  # no recorded version: content hash
    assert extract_features(store, file_id, extractors, tmp_path / "cache") == first and calls[0] == 1
    add_version(store, file_id, "v-next")
    second = extract_features(store, file_id, extractors, tmp_path / "cache")
    assert second != first and second.name.startswith("v-next-") and calls[0] == 2
    assert sorted(p.name for p in (tmp_path / "cache" / file_id).iterdir()) == sorted([first.name, second.name])


def test_denoised_audio_is_used_when_available(tmp_path, extractors):
    store, file_id = build_dataset(tmp_path / "data", cuts=EN_CUTS[:1], denoised=True)
    denoised = extract_features(store, file_id, extractors, tmp_path / "cache")
    sliced = extract_features(store, file_id, extractors, tmp_path / "cache", use_denoised=False)
    assert denoised.name.split("-")[1] == "denoised" and sliced.name.split("-")[1] == "sliced"
    key = store.read_output(file_id)["results"][0]["key"]
    loud, _ = sf.read(sliced / "wav32k" / f"{key}.wav", dtype="int16")
    quiet, _ = sf.read(denoised / "wav32k" / f"{key}.wav", dtype="int16")
    assert not np.array_equal(loud, quiet)


def test_a_failure_leaves_nothing_behind(tmp_path):
    store, file_id = build_dataset(tmp_path / "data")
    extractors = Extractors(tiny_hubert(), tiny_sovits("v2"), tag="crash")
    count_calls(extractors.hubert, fail_at=2)
    with pytest.raises(FeatureExtractionError, match=store.read_output(file_id)["results"][1]["key"]):
        extract_features(store, file_id, extractors, tmp_path / "cache")
    assert list((tmp_path / "cache" / file_id).iterdir()) == []


def test_unusable_slices_are_skipped_with_a_reason(tmp_path, extractors):
    store, file_id = build_dataset(tmp_path / "data", cuts=EN_CUTS[:1])
    output = store.read_output(file_id)
    write_wav(store.sliced_dir(file_id) / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    output["results"] += [{"key": "silent", "text": "Nothing to hear here."}, dict(output["results"][0])]
    write_json_atomic(store.output_json(file_id), output)
    folder = extract_features(store, file_id, extractors, tmp_path / "cache")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["keys"] == [output["results"][0]["key"]]
    assert "silent" in meta["skipped"]["silent"] and meta["skipped"][output["results"][0]["key"]] == "duplicate key"
    assert not (folder / "cnhubert" / "silent.pt").exists()
    assert "silent" not in json.loads((folder / "name2semantic.json").read_text())


def test_no_usable_slice_is_an_error(tmp_path, extractors):
    store, file_id = build_dataset(tmp_path / "data", cuts=EN_CUTS[:1])
    key = store.read_output(file_id)["results"][0]["key"]
    write_wav(store.sliced_dir(file_id) / f"{key}.wav", np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(FeatureExtractionError, match="no usable slice"):
        extract_features(store, file_id, extractors, tmp_path / "cache")
    assert list((tmp_path / "cache" / file_id).iterdir()) == []


def test_v4_codes_follow_extract_latent_of_the_same_quantizer():
    v2, v4 = tiny_sovits("v2"), SynthesizerTrnV3.tiny()
    v4.ssl_proj.load_state_dict(v2.ssl_proj.state_dict())
    v4.quantizer.load_state_dict(v2.quantizer.state_dict())
    ssl = torch.randn(1, 32, 51)
    with torch.no_grad():
        codes = semantic_codes(v4, ssl)
        assert codes.shape == (1, 1, 25) and torch.equal(codes, v2.extract_latent(ssl))


def test_tag_identifies_the_weights():
    hubert, sovits = tiny_hubert(), tiny_sovits("v2")
    tag = extractors_tag(hubert, sovits)
    assert len(tag) == 12 and tag == extractors_tag(hubert, sovits)
    with torch.no_grad():
        sovits.quantizer.vq.layers[0]._codebook.embed[0, 0] += 1.0
    changed = extractors_tag(hubert, sovits)
    assert changed != tag
    with torch.no_grad():  # parts other than ssl_proj and quantizer do not matter
        next(sovits.flow.parameters()).add_(1.0)
    assert extractors_tag(hubert, sovits) == changed


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    chars = sorted(set((SAMPLES / "voice_zh.txt").read_text(encoding="utf-8")) - {"\n"} | set(",.!?"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32
    )
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return load_bert(folder)


def test_mandarin_gets_bert_features(tmp_path, tiny_bert):
    store, file_id = build_dataset(tmp_path / "data", language="zh", cuts=ZH_CUTS)
    extractors = Extractors.create(tiny_hubert(), tiny_sovits("v2"), tiny_bert)
    assert extractors.bert_dim == 16
    folder = extract_features(store, file_id, extractors, tmp_path / "cache")
    (entry,) = json.loads((folder / "name2text.json").read_text())
    bert = torch.load(folder / "bert" / f"{entry['key']}.pt")
    assert bert.dtype == torch.float16 and bert.shape == (16, len(entry["phones"])) == (16, sum(entry["word2ph"]))
    expected = bert_feature(tiny_bert, entry["norm_text"], entry["word2ph"]).half()
    assert torch.equal(bert, expected) and bert.abs().sum() > 0
