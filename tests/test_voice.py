"""Model folders: write_voice / load_voice round trips (v2, v4 with LoRA merge), pretrained references, atomicity."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from mockvox.checkpoints import read_checkpoint
from mockvox.models.lora import V4_LORA_HEADER, merge_lora
from mockvox.precision import NETWORKS, capabilities, plan
from mockvox.pretrained import PretrainedMissing
from mockvox.voice import CONFIG_NAME, REFERENCE_NAME, Reference, load_voice, voice_reference, write_voice
from tests.infer import V2_KWARGS, tiny_gpt, tiny_hubert, tiny_v2, tiny_v4, tiny_vocoder, write_v2, write_v4


def _assert_same(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value.to(got[key].dtype)), key


def _fp16_rounded(state: dict) -> dict:
    return {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}


def test_v2_round_trip_gives_the_exported_weights(tmp_path) -> None:
    gpt, sovits, hubert = tiny_gpt(), tiny_v2(), tiny_hubert()
    folder = write_voice(
        tmp_path / "voice", version="v2", gpt=gpt, sovits=sovits, sovits_kwargs=V2_KWARGS, hubert=hubert, bert=None,
        extra={"training": {"epochs": 3}},
    )  # fmt: skip
    assert {p.name for p in folder.iterdir()} == {CONFIG_NAME, "gpt.ckpt", "sovits.pth", "hubert"}
    voice = load_voice(folder, pretrained_dir=tmp_path / "nothing")
    assert (voice.version, voice.sample_rate, voice.bert, voice.vocoder) == ("v2", 32000, None, None)
    assert voice.config["training"] == {"epochs": 3}
    _assert_same(voice.gpt.state_dict(), _fp16_rounded(gpt.state_dict()))
    expected = {k: v for k, v in _fp16_rounded(sovits.state_dict()).items() if not k.startswith("enc_q.")}
    _assert_same(voice.sovits.state_dict(), expected)
    _assert_same(voice.hubert.state_dict(), hubert.state_dict())
    official = read_checkpoint(folder / "sovits.pth")  # the WebUI export layout: fp16, no posterior encoder
    assert all(v.dtype == torch.float16 for v in official["weight"].values() if v.is_floating_point())
    assert official["config"]["model"]["version"] == "v2"
    assert all(k.startswith("model.") for k in read_checkpoint(folder / "gpt.ckpt")["weight"])


@pytest.mark.parametrize("base_from", ["base", "lora_model"])
def test_v4_round_trip_equals_the_merged_in_memory_model(tmp_path, base_from) -> None:
    base, model = tiny_v4()
    vocoder = tiny_vocoder()
    expected = merge_lora(copy.deepcopy(model)).state_dict()
    folder = write_v4(
        tmp_path / "voice", sovits=model, sovits_base=base if base_from == "base" else model, vocoder=vocoder
    )
    assert (folder / "sovits.pth").read_bytes()[:2] == V4_LORA_HEADER
    voice = load_voice(folder)
    assert (voice.version, voice.sample_rate) == ("v4", 48000)
    _assert_same(voice.sovits.state_dict(), expected)
    _assert_same(voice.vocoder.state_dict(), vocoder.state_dict())
    merged_q = voice.sovits.cfm.estimator.transformer_blocks[0].attn.to_q.weight
    assert not torch.equal(merged_q, base.cfm.estimator.transformer_blocks[0].attn.to_q.weight)  # LoRA took effect


@pytest.mark.parametrize(
    ("version", "kw", "named"),
    [
        ("v2", {"hubert": "pretrained"}, "chinese-hubert-base"),
        ("v2", {"bert": "pretrained"}, "chinese-roberta-wwm-ext-large"),
        ("v4", {"sovits_base": "pretrained"}, "s2Gv4.pth"),
        ("v4", {"vocoder": None}, "vocoder.pth"),
    ],
)
def test_missing_pretrained_file_is_named(tmp_path, version, kw, named) -> None:
    folder = (write_v2 if version == "v2" else write_v4)(tmp_path / "voice", **kw)
    assert yaml.safe_load((folder / CONFIG_NAME).read_text())
    with pytest.raises(PretrainedMissing, match="mockvox pretrained download") as err:
        load_voice(folder, pretrained_dir=tmp_path / "pretrained")
    assert named in str(err.value) and str(tmp_path / "pretrained") in str(err.value)


def test_write_is_atomic_and_replaces_a_previous_folder(tmp_path) -> None:
    folder = write_v2(tmp_path / "voice", extra={"run": 1})
    before = (folder / CONFIG_NAME).read_text()
    lora_free, _ = tiny_v4()  # a v4 generator without adapters cannot be exported
    with pytest.raises(ValueError, match="LoRA"):
        write_v4(tmp_path / "voice", sovits=lora_free)
    with pytest.raises(ValueError, match="reserved"):
        write_v2(tmp_path / "voice", extra={"gpt": 1})
    assert (folder / CONFIG_NAME).read_text() == before
    write_v2(tmp_path / "voice", extra={"run": 2})
    assert yaml.safe_load((folder / CONFIG_NAME).read_text())["run"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["voice"]  # no staging or old folders left behind


def test_missing_folder_and_bad_precision(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        load_voice(tmp_path)
    folder = write_v2(tmp_path / "voice")
    with pytest.raises(ValueError, match="accepted: fp32, bf16, fp16"):
        load_voice(folder, precision="int4")
    with pytest.raises(ValueError, match="GPU"):
        load_voice(folder, precision="fp16")
    voice = load_voice(folder, precision="bf16")
    assert voice.precision == plan("bf16", capabilities("cpu"))  # what this CPU runs fast
    assert next(voice.sovits.parameters()).dtype == voice.dtype == voice.precision["sovits"]
    assert next(voice.gpt.parameters()).dtype == voice.precision["gpt"]  # bf16 where oneDNN packs it
    every = dict.fromkeys(NETWORKS, "bf16")
    voice = load_voice(folder, precision=every)
    assert {next(voice.sovits.parameters()).dtype, next(voice.hubert.parameters()).dtype} == {torch.bfloat16}


def test_bf16_without_cpu_support_keeps_the_convolutions_in_fp32(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("MOCKVOX_CPU_BF16", "off")
    with caplog.at_level(logging.INFO, logger="mockvox.voice"):
        voice = load_voice(write_v2(tmp_path / "voice"), precision="bf16")
    assert voice.precision == {"gpt": torch.float32, "sovits": torch.float32, "vocoder": torch.float32,
                               "hubert": torch.float32}  # fmt: skip
    assert next(voice.sovits.parameters()).dtype == torch.float32
    assert next(voice.hubert.parameters()).dtype == torch.float32
    assert any("bf16 kernels: none, int8 kernel: " in r.getMessage() for r in caplog.records)
    assert any("gpt=fp32 sovits=fp32" in r.getMessage() for r in caplog.records)


def test_int8_voice_packs_the_gpt_and_keeps_fp32_activations(tmp_path) -> None:
    from mockvox.precision import int8_kernel

    voice = load_voice(write_v2(tmp_path / "voice"), precision="int8")
    assert voice.precision["gpt"] == (torch.int8 if int8_kernel() else voice.precision["gpt"])
    assert next(voice.gpt.parameters()).dtype == torch.float32
    layer = voice.gpt.h.layers[0]
    assert (layer.linear1.packed is not None) == (int8_kernel() is not None)


def test_default_reference_is_part_of_the_folder(tmp_path) -> None:
    clip = tmp_path / "slice.wav"
    sf.write(clip, np.zeros(32000 * 4, dtype=np.float32), 32000, subtype="PCM_16")
    folder = write_v2(tmp_path / "voice", reference=Reference(clip, "Hello there.", "en"))
    ref = voice_reference(folder)
    assert ref == Reference(folder / REFERENCE_NAME, "Hello there.", "en")
    assert ref.audio.read_bytes() == clip.read_bytes()
    assert load_voice(folder).reference == ref
    assert voice_reference(write_v2(tmp_path / "bare")) is None and load_voice(tmp_path / "bare").reference is None
    with pytest.raises(ValueError, match="reserved"):
        write_v2(tmp_path / "clash", extra={"reference": {"audio": "x.wav"}})
    with pytest.raises(FileNotFoundError):  # a missing clip fails the write and leaves nothing behind
        write_v2(tmp_path / "broken", reference=Reference(tmp_path / "absent.wav", "Hi.", "en"))
    assert not (tmp_path / "broken").exists() and not list(tmp_path.glob(".broken*"))


def test_spectrogram_settings_are_recorded_exported_and_loaded(tmp_path) -> None:
    from mockvox.audio.spectrogram import OFFICIAL, Spectrogram

    spec = Spectrogram(sampling_rate=24000, filter_length=1920, hop_length=480, win_length=1920)
    folder = write_voice(tmp_path / "voice", version="v2", gpt=tiny_gpt(), sovits=tiny_v2(), sovits_kwargs=V2_KWARGS,
                         hubert=tiny_hubert(), bert=None, spectrogram=spec)  # fmt: skip
    meta = yaml.safe_load((folder / CONFIG_NAME).read_text())
    assert meta["spectrogram"] == spec.as_s2_data() and meta["sample_rate"] == 24000  # v2 decodes at its input rate
    assert dict(read_checkpoint(folder / "sovits.pth")["config"]["data"]) == spec.as_s2_data()
    assert load_voice(folder, pretrained_dir=tmp_path / "nothing").spectrogram == spec
    del meta["spectrogram"]  # a folder written before the entry existed: the official settings
    (folder / CONFIG_NAME).write_text(yaml.safe_dump(meta))
    assert load_voice(folder, pretrained_dir=tmp_path / "nothing").spectrogram == OFFICIAL
