"""SoVITS / GPT datasets, collates and DataModules on features extracted from real audio with tiny models."""

from __future__ import annotations

import json
import math
import re

import pytest
import soundfile as sf
import torch

from mockvox.audio.mel_v4 import mel_v4, norm_spec
from mockvox.audio.spectral import spectrogram_torch
from mockvox.data.datasets import GPTDataset, SovitsDataset, collate_gpt, collate_sovits
from mockvox.data.features import Extractors, extract_features
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.models.t2s import Text2Semantic, pad_mask_left
from mockvox.text.symbols import cleaned_text_to_sequence
from mockvox.train.datamodules import GPTDataModule, SovitsDataModule
from tests.data.test_features import build_dataset, tiny_hubert, tiny_sovits


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    store, file_id = build_dataset(root / "data")
    return extract_features(store, file_id, Extractors.create(tiny_hubert(), tiny_sovits("v2")), root / "cache")


def read_wav(path) -> torch.Tensor:
    audio, _ = sf.read(path, dtype="float32")
    return torch.from_numpy(audio).unsqueeze(0)  # [1, S]


def test_sovits_item_is_aligned_official_features(features):
    ds = SovitsDataset(features, "v2")
    assert ds.unique_keys == sorted(json.loads((features / "meta.json").read_text())["keys"])
    assert len(ds) == 3 * math.ceil(100 / 3) and ds.dropped == {}
    name2text = {e["key"]: e["phones"] for e in json.loads((features / "name2text.json").read_text())}
    for key in ds.unique_keys:
        item = ds[ds.keys.index(key)]
        wav = read_wav(features / "wav32k" / f"{key}.wav")
        spec = spectrogram_torch(wav, 2048, 32000, 640, 2048, center=False)[0]
        saved = torch.load(features / "cnhubert" / f"{key}.pt")[0]  # [C, T50]
        frames = item["spec"].shape[-1]
        assert item["ssl"].shape == (32, frames) and item["spec"].shape == (1025, frames)
        assert frames == min(spec.shape[-1], saved.shape[-1] + 1)
        torch.testing.assert_close(item["spec"], spec[:, :frames])
        torch.testing.assert_close(item["wav"], wav)
        n = min(frames, saved.shape[-1])
        torch.testing.assert_close(item["ssl"][:, :n], saved[:, :n])
        if saved.shape[-1] < frames:  # the official one-frame replicate pad
            torch.testing.assert_close(item["ssl"][:, -1], saved[:, -1])
        assert item["phones"].tolist() == cleaned_text_to_sequence(name2text[key]) and "mel" not in item


def test_real_clips_need_the_replicate_pad(features):
    ds = SovitsDataset(features, "v2", min_items=0)
    hubert_frames = [torch.load(features / "cnhubert" / f"{key}.pt").shape[-1] for key in ds.keys]
    spec_frames = [ds.spectrogram(read_wav(features / "wav32k" / f"{key}.wav")).shape[-1] for key in ds.keys]
    assert all(s - h in (0, 1) for h, s in zip(hubert_frames, spec_frames, strict=True))
    assert any(s - h == 1 for h, s in zip(hubert_frames, spec_frames, strict=True))


def test_v4_item_has_the_normalised_mel(features):
    ds = SovitsDataset(features, "v4", min_items=0)
    item = ds[0]
    frames = item["spec"].shape[-1]
    expected = norm_spec(mel_v4(read_wav(features / "wav32k" / f"{ds.keys[0]}.wav")))[0, :, : 2 * frames]
    assert item["mel"].shape == (100, 2 * frames)
    torch.testing.assert_close(item["mel"], expected)


def test_duration_filter_and_repetition(features):
    keys = SovitsDataset(features).unique_keys
    durations = {k: sf.info(str(features / "wav32k" / f"{k}.wav")).duration for k in keys}
    cut = sorted(durations.values())[1]
    ds = SovitsDataset(features, min_items=0, min_sec=cut - 0.01)
    assert len(ds) == 2 and set(ds.dropped) == {min(durations, key=durations.get)}
    assert "outside" in next(iter(ds.dropped.values()))
    assert len(SovitsDataset(features, min_items=4)) == 2 * 3  # repeated at least twice
    with pytest.raises(ValueError, match=re.escape(str(features))):
        SovitsDataset(features, max_sec=1.0)
    with pytest.raises(ValueError, match="accepted: v2, v4"):
        SovitsDataset(features, "v3")


def test_collate_sovits_pads_right_to_an_even_length(features):
    ds = SovitsDataset(features, "v4", min_items=0)
    items = [ds[0], ds[1]]
    batch = collate_sovits(items)
    longest = max(it["spec"].shape[-1] for it in items)
    frames = batch["spec"].shape[-1]
    assert frames == 2 * (longest // 2 + 1) and batch["ssl"].shape[-1] == frames
    assert batch["mel"].shape[-1] == 2 * frames
    for i, it in enumerate(items):
        t = it["spec"].shape[-1]
        assert batch["spec_lengths"][i] == t and batch["mel_lengths"][i] == 2 * t
        assert torch.equal(batch["spec"][i, :, :t], it["spec"]) and batch["spec"][i, :, t:].abs().sum() == 0
        assert torch.equal(batch["ssl"][i, :, :t], it["ssl"]) and batch["ssl"][i, :, t:].abs().sum() == 0
        n = it["phones"].shape[0]
        assert torch.equal(batch["phones"][i, :n], it["phones"]) and batch["phone_lengths"][i] == n
        assert batch["wav_lengths"][i] == it["wav"].shape[-1]
    assert batch["wav"].shape[-1] >= frames * 640
    assert collate_sovits(items[:1], min_frames=1001)["spec"].shape[-1] == 1002


def test_sovits_batches_feed_the_models(features):
    torch.manual_seed(0)
    batch = next(iter(SovitsDataModule(features, "v2", batch_size=2, min_items=0).train_dataloader()))
    net = SynthesizerTrn.tiny(spec_channels=1025, ssl_dim=32)
    out = net(batch["ssl"], batch["spec"], batch["spec_lengths"], batch["phones"], batch["phone_lengths"])
    assert out.m_p.shape[-1] == batch["spec"].shape[-1] and out.z_p.isfinite().all()
    batch = next(iter(SovitsDataModule(features, "v4", batch_size=2, min_items=0).train_dataloader()))
    net4 = SynthesizerTrnV3.tiny(spec_channels=1025, ssl_dim=32)
    loss = net4(
        batch["ssl"], batch["spec"], batch["mel"], batch["spec_lengths"], batch["phones"], batch["phone_lengths"],
        batch["mel_lengths"],
    )  # fmt: skip
    assert loss.isfinite()


def test_gpt_items_and_model_batches(features):
    ds = GPTDataset(features)
    semantic = json.loads((features / "name2semantic.json").read_text())
    assert ds.dropped == {} and len(ds) == 3 * 34  # ceil(100 / 3) copies
    item = ds[0]
    assert item["semantic"].tolist() == semantic[item["key"]]
    assert item["bert"].shape == (1024, item["phones"].shape[0]) and item["bert"].abs().sum() == 0  # en: zeros
    batch = next(iter(GPTDataModule(features, batch_size=3, min_items=0).train_dataloader()))
    model = Text2Semantic.tiny().eval()
    out = model.training_step_outputs(
        batch["phones"], batch["phone_lengths"], batch["semantic"], batch["semantic_lengths"], batch["bert"]
    )
    assert out.loss.isfinite() and out.targets.shape == (3, int(batch["semantic_lengths"].max()) + 1)


def write_gpt_folder(folder, entries: dict[str, tuple[int, int]], bert: dict[str, torch.Tensor] | None = None):
    """A hand-made features folder: key -> (n phones, n semantic tokens); n tokens < 0: no semantic entry."""
    folder.mkdir(parents=True, exist_ok=True)
    name2text = [{"key": k, "phones": ["AA"] * p, "word2ph": None, "norm_text": "x"} for k, (p, _) in entries.items()]
    semantic = {k: [7] * s for k, (_, s) in entries.items() if s >= 0}
    (folder / "name2text.json").write_text(json.dumps(name2text))
    (folder / "name2semantic.json").write_text(json.dumps(semantic))
    for key, tensor in (bert or {}).items():
        (folder / "bert").mkdir(exist_ok=True)
        torch.save(tensor, folder / "bert" / f"{key}.pt")
    return folder


def test_gpt_filters_report_their_reasons(tmp_path):
    folder = write_gpt_folder(
        tmp_path / "f",
        {
            "ok": (10, 50),  # 5 phones/s
            "long": (300, 1351),  # more than 54 s of tokens
            "wordy": (541, 1350),  # more than 540 phones
            "slow": (2, 50),  # 1 phone/s
            "fast": (30, 25),  # 30 phones/s
            "mute": (10, -1),  # no semantic tokens
        },
    )
    ds = GPTDataset(folder)
    assert ds.unique_keys == ["ok"] and len(ds) == 100
    assert set(ds.dropped) == {"long", "wordy", "slow", "fast", "mute"}
    assert "1351 semantic tokens" in ds.dropped["long"] and "541 phones" in ds.dropped["wordy"]
    assert "phones/s" in ds.dropped["slow"] and "phones/s" in ds.dropped["fast"]
    assert set(GPTDataset(folder, max_ps_ratio=40, min_items=0).unique_keys) == {"ok", "fast"}
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "g"))):
        GPTDataset(write_gpt_folder(tmp_path / "g", {"slow": (2, 50)}))


def test_gpt_bert_files_are_loaded_and_checked(tmp_path):
    feats = torch.randn(8, 10).half()
    folder = write_gpt_folder(tmp_path / "f", {"a": (10, 50), "b": (10, 50)}, {"a": feats, "b": torch.zeros(8, 3)})
    ds = GPTDataset(folder, bert_dim=8, min_items=0)
    torch.testing.assert_close(ds[0]["bert"], feats.float())
    with pytest.raises(ValueError, match="b.pt"):
        ds[1]


def test_collate_gpt_pads_text_left_and_tokens_right():
    items = [
        {"key": "a", "phones": torch.tensor([5, 6]), "bert": torch.ones(4, 2), "semantic": torch.tensor([1, 2, 3])},
        {"key": "b", "phones": torch.tensor([7, 8, 9]), "bert": 2 * torch.ones(4, 3), "semantic": torch.tensor([4])},
    ]
    batch = collate_gpt(items)
    assert batch["phones"].tolist() == [[0, 5, 6], [7, 8, 9]] and batch["phone_lengths"].tolist() == [2, 3]
    assert batch["bert"][0, :, 0].abs().sum() == 0 and torch.equal(batch["bert"][0, :, 1:], torch.ones(4, 2))
    assert batch["semantic"].tolist() == [[1, 2, 3], [4, 1024, 1024]] and batch["semantic_lengths"].tolist() == [3, 1]
    assert pad_mask_left(batch["phone_lengths"], 3).tolist() == [[True, False, False], [False, False, False]]


def test_datamodules_shuffle_reproducibly_and_validate_on_two_items(features):
    def order(seed):
        dm = GPTDataModule(features, batch_size=4, seed=seed)
        return [k for b in dm.train_dataloader() for k in b["keys"]]

    first = order(1234)
    assert len(first) == 102 and first == order(1234) and first != order(7)
    dm = SovitsDataModule(features, "v2")
    val = list(dm.sample_dataloader())
    assert [b["keys"] for b in val] == [[k] for k in SovitsDataset(features, min_items=0).keys[:2]]
    with pytest.raises(FileNotFoundError, match="name2text.json"):
        GPTDataModule(features / "absent").train_dataloader()


# ---------------------------------------------------------------------------- held-out slices


def _slices(tmp_path, seconds: list[float], texts: list[str] | None = None) -> list[dict]:
    results = []
    for i, length in enumerate(seconds):
        key = f"{i * 10**6:010d}_{i * 10**6 + int(length * 32000):010d}"
        sf.write(tmp_path / f"{key}.wav", [0.1] * int(length * 32000), 32000)
        results.append({"key": key, "text": (texts or [f"line {i}"] * len(seconds))[i]})
    return results


def test_holdout_takes_a_share_rounded_up_capped_and_stable(tmp_path):
    from mockvox.data.datasets import choose_holdout

    results = _slices(tmp_path, [3.0] * 20)
    first = choose_holdout(results, tmp_path, 0.1, 8)
    assert len(first) == 2 and first == choose_holdout(list(reversed(results)), tmp_path, 0.1, 8)  # not by order
    assert len(choose_holdout(results, tmp_path, 0.5, 8)) == 8  # holdout_max
    assert len(choose_holdout(results, tmp_path, 0.01, 8)) == 1  # rounded up
    assert choose_holdout(results, tmp_path, 0.0, 8) == [] == choose_holdout(results, tmp_path, 0.1, 0)
    # the default reference is never held out; a bigger share keeps the earlier choice (hash order)
    kept = choose_holdout(results, tmp_path, 0.1, 8, keep={first[0]["key"]})
    assert first[0] not in kept and len(kept) == 2
    assert first == choose_holdout(results, tmp_path, 0.2, 8)[:2]


def test_holdout_never_leaves_training_short_of_speech_or_items(tmp_path):
    from mockvox.data.datasets import choose_holdout

    results = _slices(tmp_path, [2.0, 2.0, 2.0, 0.3], ["a", "b", "", "d"])  # one untranscribed, one too short
    assert len(choose_holdout(results, tmp_path, 1.0, 8)) == 1  # of the 2 usable slices, one must stay
    assert choose_holdout(results, tmp_path, 1.0, 8, min_seconds=3.0) == []  # 2 s left would be under 3 s
    assert len(choose_holdout(results, tmp_path, 1.0, 8, min_seconds=2.0)) == 1
