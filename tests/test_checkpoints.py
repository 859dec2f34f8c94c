"""Official checkpoint formats: GPT .ckpt, SoVITS .pth (pretrained / export / headered), safe loading."""

from __future__ import annotations

import pickle
import sys
import types

import pytest
import torch

from mockvox import checkpoints as ck
from mockvox.models.t2s import T2SConfig, Text2Semantic
from tests.conformance.fixtures import fixtures_dir, key_shapes, scheme_state_dict


def _hparams_module():
    """A stand-in for GPT-SoVITS ``utils`` with its dict-like ``HParams`` (only present while pickling)."""
    mod = types.ModuleType("utils")

    class HParams:
        def __init__(self, **kwargs):
            for k, v in kwargs.items():
                setattr(self, k, HParams(**v) if isinstance(v, dict) else v)

    HParams.__module__, HParams.__qualname__ = "utils", "HParams"
    mod.HParams = HParams
    return mod


@pytest.fixture
def hparams(monkeypatch):
    mod = _hparams_module()
    monkeypatch.setitem(sys.modules, "utils", mod)
    return mod.HParams


def test_gpt_export_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Text2Semantic.tiny().eval()
    path = ck.save_gpt_checkpoint(tmp_path / "voice-e5.ckpt", model.official_state_dict(), model.config.to_official())
    assert path.read_bytes()[:2] == b"PK"
    raw = torch.load(path, weights_only=True)  # loadable by plain torch, as GPT-SoVITS does
    assert set(raw) == {"weight", "config", "info"} and raw["config"]["data"]["max_sec"] == 54
    loaded = ck.load_gpt_checkpoint(path)
    assert all(k.startswith("model.") and v.dtype == torch.float16 for k, v in loaded.weight.items())
    again = Text2Semantic(T2SConfig.from_official(loaded.config))
    again.load_official_state_dict(loaded.weight)
    for k, v in model.state_dict().items():
        assert again.state_dict()[k].dtype == torch.float32
        torch.testing.assert_close(again.state_dict()[k], v.half().float())


def test_sovits_config_of_unknown_class_loads_safely(tmp_path, hparams):
    cfg = hparams(data={"filter_length": 2048, "hop_length": 640}, model={"inter_channels": 192})
    obj = {"weight": {"enc_p.proj.weight": torch.ones(2, 3)}, "config": cfg, "info": "5epoch_100iteration"}
    path = tmp_path / "old.pth"
    torch.save(obj, path)
    del sys.modules["utils"]
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    got = ck.read_checkpoint(path)
    assert isinstance(got["config"], ck.PickledObject) and got["config"].pickled_class == "utils.HParams"
    assert got["config"].data.hop_length == 640 and got["config"]["model"]["inter_channels"] == 192
    ck.write_checkpoint(got, tmp_path / "rewritten.pth")  # placeholders are written back as plain dicts
    plain = torch.load(tmp_path / "rewritten.pth", weights_only=True)
    assert type(plain["config"]) is dict and plain["config"]["data"] == {"filter_length": 2048, "hop_length": 640}


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_restricted_unpickler_never_calls_unknown_globals(tmp_path):
    target = tmp_path / "pwned"
    torch.save({"weight": {}, "config": _Exploit(str(target))}, tmp_path / "evil.pth")
    got = ck.read_checkpoint(tmp_path / "evil.pth")
    assert not target.exists() and isinstance(got["config"], ck.PickledObject)


def test_headered_export_and_version_detection(tmp_path):
    sd = {"enc_p.text_embedding.weight": torch.randn(732, 4), "enc_q.pre.weight": torch.randn(2, 2)}
    path = ck.save_sovits_checkpoint(tmp_path / "pro.pth", sd, {"model": {}}, "1epoch_1iteration", version="v2Pro")
    assert path.read_bytes()[:2] == b"05"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    loaded = ck.load_sovits_checkpoint(path)
    assert loaded.version == ck.SovitsVersion("v2", "v2Pro", False)
    assert set(loaded.weight) == {"enc_p.text_embedding.weight"} and loaded.weight[
        "enc_p.text_embedding.weight"
    ].dtype == (torch.float16)
    lora = ck.save_sovits_checkpoint(tmp_path / "v4.pth", sd, {}, "x", version="v4", lora_rank=32)
    assert lora.read_bytes()[:2] == b"04" and ck.detect_sovits_version(lora) == ck.SovitsVersion("v2", "v4", True)
    assert ck.read_checkpoint(lora)["lora_rank"] == 32
    plain = ck.save_sovits_checkpoint(tmp_path / "v2.pth", sd, {}, "x", version="v2")
    assert plain.read_bytes()[:2] == b"PK" and ck.detect_sovits_version(plain).model == "v1"  # official size rule
    assert ck.load_sovits_checkpoint(plain).version == ck.SovitsVersion("v2", "v2", False)  # keys: 732 symbols


def test_v2pro_versions_from_weights_and_config():
    pro = {"sv_emb.weight": torch.zeros(4, 40), "dec.conv_pre.weight": torch.zeros(512, 192, 7)}
    assert ck.sovits_version_from_weights(pro).model == "v2Pro"
    plus = {**pro, "dec.conv_pre.weight": torch.zeros(768, 192, 7)}  # the official ProPlus decoder width
    assert ck.sovits_version_from_weights(plus) == ck.SovitsVersion("v2", "v2ProPlus", False)
    assert ck.sovits_version_from_weights(pro, {"model": {"version": "v2ProPlus"}}).model == "v2ProPlus"
    assert ck.sovits_version_from_weights({"dec.conv_pre.weight": torch.zeros(768, 192, 7)}).model == "v2"


def test_tiny_v2pro_export_rebuilds_from_its_config(tmp_path):
    from mockvox.models.sovits_v2 import TINY, TINY_PRO, SynthesizerTrn

    net = SynthesizerTrn.tiny(version="v2ProPlus")
    sizes = {**TINY, **TINY_PRO, "version": "v2ProPlus"}
    config = {"data": {"filter_length": (TINY["spec_channels"] - 1) * 2}, "model": sizes}
    path = ck.save_sovits_checkpoint(tmp_path / "x.pth", net.state_dict(), config, "e1", version="v2ProPlus")
    assert path.read_bytes()[:2] == b"06"
    loaded = SynthesizerTrn.from_checkpoint(path)
    assert loaded.version == "v2ProPlus" and not loaded.training and not hasattr(loaded, "enc_q")
    assert all(torch.equal(v, net.state_dict()[k].half().float()) for k, v in loaded.state_dict().items())
    with pytest.raises(ValueError, match="SynthesizerTrn loads v2, v2Pro, v2ProPlus"):
        SynthesizerTrn.from_checkpoint(ck.save_sovits_checkpoint(tmp_path / "v4.pth", {}, {}, "x", "v4", lora_rank=4))
    with pytest.raises(ValueError, match="do not fit"):
        SynthesizerTrn.from_checkpoint(path, gin_channels=40)


def test_pretrained_files_are_recognised_by_hash(tmp_path, monkeypatch):
    path = ck.write_checkpoint({"weight": {"a": torch.zeros(3)}}, tmp_path / "s2Gv4.pth")
    import hashlib

    digest = hashlib.md5(path.read_bytes()[:8192]).hexdigest()
    monkeypatch.setitem(ck.PRETRAINED_MD5, digest, ck.SovitsVersion("v2", "v4", False))
    assert ck.detect_sovits_version(path).model == "v4"


def test_write_is_atomic_and_validates_headers(tmp_path):
    ck.write_checkpoint({"a": 1}, tmp_path / "x.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]
    with pytest.raises(ValueError, match="two ASCII digits"):
        ck.write_checkpoint({"a": 1}, tmp_path / "y.pth", header=b"X")
    (tmp_path / "junk.pth").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        ck.read_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        ck.read_checkpoint(tmp_path / "missing.pth")


@pytest.mark.skipif(not (fixtures_dir() / "keys").is_dir(), reason="no GPT-SoVITS fixture folder")
def test_full_size_sovits_export_has_the_official_key_set(tmp_path):
    full = scheme_state_dict(key_shapes("s2G_v2_keys_incl_enc_q"), seed=1)
    ck.save_sovits_checkpoint(tmp_path / "G.pth", full, {"model": {}}, "0epoch_0iteration", export=False)
    exp = ck.save_sovits_checkpoint(tmp_path / "exp.pth", full, {"model": {}}, "1epoch_10iteration")
    pre = ck.load_sovits_checkpoint(tmp_path / "G.pth")
    assert set(pre.weight) == set(full) and pre.weight["enc_q.proj.weight"].dtype == torch.float32
    got = ck.load_sovits_checkpoint(exp)
    assert {k: tuple(v.shape) for k, v in got.weight.items()} == key_shapes("s2G_v2_keys_excl_enc_q")
    assert got.version.model == "v2" and got.info == "1epoch_10iteration"


@pytest.mark.skipif(not (fixtures_dir() / "keys").is_dir(), reason="no GPT-SoVITS fixture folder")
def test_full_size_gpt_checkpoint_loads_into_our_model(tmp_path):
    weight = scheme_state_dict(key_shapes("t2s_v2_keys"), seed=1)
    official_cfg = {"data": {"max_sec": 54}, "model": Text2Semantic().config.to_official()}
    ck.write_checkpoint({"weight": weight, "config": official_cfg}, tmp_path / "s1v3.ckpt")
    model = Text2Semantic.from_official_checkpoint(tmp_path / "s1v3.ckpt")
    assert model.bert_proj.weight.dtype == torch.float32 and not model.training
    torch.testing.assert_close(model.official_state_dict()["model.bert_proj.weight"], weight["model.bert_proj.weight"])
    model.save_official_checkpoint(tmp_path / "mine.ckpt", info="GPT-e3")
    again = ck.load_gpt_checkpoint(tmp_path / "mine.ckpt")
    assert set(again.weight) == set(weight) and again.info == "GPT-e3"
