"""SoVITS v4 LoRA: the official recipe's trainable set, merge arithmetic and the export format round trip."""

from __future__ import annotations

import pytest
import torch

from mockvox.models.lora import (
    FULLY_TRAINED,
    V4_LORA_HEADER,
    add_lora,
    apply_lora_checkpoint,
    export_state_dict,
    lora_checkpoint,
    merge_lora,
    trainable_parameters,
)
from mockvox.models.sovits_v4 import SynthesizerTrnV3


def _tiny(seed: int = 0) -> SynthesizerTrnV3:
    torch.manual_seed(seed)
    return SynthesizerTrnV3.tiny().eval()


def _trained_lora_model(rank: int = 4, alpha: float | None = None) -> tuple[SynthesizerTrnV3, dict]:
    """A tiny model with LoRA whose B matrices and wns1 have moved away from their initial values."""
    base = _tiny().state_dict()
    model = add_lora(_tiny(), rank=rank, alpha=alpha)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or name.startswith("wns1."):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model, base


def test_trainable_set_is_lora_plus_fully_trained_modules() -> None:
    model = add_lora(_tiny(), rank=4)
    names = trainable_parameters(model)
    lora = [n for n in names if "lora_" in n]
    others = {n.split(".")[0] for n in names if "lora_" not in n}
    n_attn = len(model.cfm.estimator.transformer_blocks) * 4
    assert len(lora) == 2 * n_attn
    assert others == set(FULLY_TRAINED)
    assert all(
        not p.requires_grad
        for n, p in model.named_parameters()
        if n.startswith(("enc_p", "ssl_proj", "cfm")) and "lora_" not in n
    )


def test_merge_adds_scaled_low_rank_update() -> None:
    model, _ = _trained_lora_model(rank=4, alpha=8)
    layer = model.cfm.base_model.model.estimator.transformer_blocks[0].attn.to_q
    a, b = layer.lora_A["default"].weight.clone(), layer.lora_B["default"].weight.clone()
    w = layer.base_layer.weight.clone()
    merge_lora(model)
    merged = model.cfm.estimator.transformer_blocks[0].attn.to_q.weight
    torch.testing.assert_close(merged, w + (8 / 4) * b @ a)
    assert set(model.state_dict()) == set(_tiny().state_dict())


def test_export_is_fp16_without_frozen_parameters() -> None:
    model, _ = _trained_lora_model()
    ckpt = lora_checkpoint(model, config={"model": {}}, info="e1")
    assert set(ckpt) >= {"weight", "config", "info", "lora_rank"} and ckpt["lora_rank"] == 4
    weights = ckpt["weight"]
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert not [k for k in weights if k.startswith(("enc_p.", "ssl_proj.", "cfm.base_model.model.estimator.time"))]
    assert "cfm.base_model.model.estimator.rotary_embed.inv_freq" in weights  # buffers travel with the export
    assert "quantizer.vq.layers.0._codebook.embed" in weights


def test_export_round_trip_reproduces_merged_model() -> None:
    model, base = _trained_lora_model(rank=4, alpha=4)
    ckpt = lora_checkpoint(model)
    fresh = _tiny()
    fresh.load_state_dict(base)
    apply_lora_checkpoint(fresh, ckpt)
    expected = merge_lora(model).state_dict()
    got = fresh.state_dict()
    assert set(got) == set(expected)
    for k in expected:  # the export is fp16: A, B and wns1 are rounded to half precision
        torch.testing.assert_close(got[k], expected[k], atol=2e-3, rtol=2e-3, msg=k)


def test_rejects_non_lora_objects() -> None:
    with pytest.raises(ValueError, match="lora_rank"):
        apply_lora_checkpoint(_tiny(), {"weight": {}})
    with pytest.raises(ValueError, match="does not fit"):
        apply_lora_checkpoint(_tiny(), {"weight": {"nope.weight": torch.zeros(1)}, "lora_rank": 4})


def test_lora_file_has_v4_header_and_loads(tmp_path) -> None:
    checkpoints = pytest.importorskip("mockvox.checkpoints")
    from mockvox.models.lora import load_lora, save_lora

    model, base = _trained_lora_model()
    path = tmp_path / "voice_e1_s10_l4.pth"
    save_lora(model, path, config={"model": {}}, info="e1")
    assert path.read_bytes()[:2] == V4_LORA_HEADER
    assert checkpoints.read_checkpoint(path)["lora_rank"] == 4
    fresh = _tiny()
    fresh.load_state_dict(base)
    load_lora(fresh, path)
    expected = export_state_dict(merge_lora(model))
    for k, v in export_state_dict(fresh).items():
        torch.testing.assert_close(v.float(), expected[k].float(), atol=2e-3, rtol=2e-3, msg=k)


def test_our_file_loads_the_official_way(tmp_path) -> None:
    """Official loader (process_ckpt.load_sovits_new): put ``PK`` back over the header, then ``torch.load``."""
    pytest.importorskip("mockvox.checkpoints")
    import io

    from mockvox.models.lora import save_lora

    model, _ = _trained_lora_model()
    path = tmp_path / "x.pth"
    save_lora(model, path, config={"train": {"lora_rank": 4}}, info="e1")
    data = path.read_bytes()
    obj = torch.load(io.BytesIO(b"PK" + data[2:]), map_location="cpu", weights_only=True)
    assert obj["lora_rank"] == 4 and obj["info"] == "e1"
    assert obj["weight"].keys() == export_state_dict(model).keys()


def test_reads_an_official_style_file_with_pickled_hparams(tmp_path) -> None:
    """Official exports pickle ``utils.HParams`` as config and start with ``04``: they must load without GPT-SoVITS."""
    pytest.importorskip("mockvox.checkpoints")
    import io
    import sys
    import types

    from mockvox.models.lora import load_lora

    model, base = _trained_lora_model()
    fake_utils = types.ModuleType("utils")

    class HParams:  # stands in for GPT_SoVITS/utils.py::HParams
        def __init__(self, **kw):
            self.__dict__.update(kw)

    HParams.__module__, HParams.__qualname__ = "utils", "HParams"
    fake_utils.HParams = HParams
    sys.modules["utils"], saved = fake_utils, sys.modules.get("utils")
    try:
        obj = {"weight": export_state_dict(model), "config": HParams(model={"version": "v4"}), "info": "e1_s2"}
        obj["lora_rank"] = 4
        buf = io.BytesIO()
        torch.save(obj, buf)
    finally:
        if saved is None:
            del sys.modules["utils"]
        else:
            sys.modules["utils"] = saved
    path = tmp_path / "official_e1_s2_l4.pth"
    path.write_bytes(V4_LORA_HEADER + buf.getvalue()[2:])
    fresh = _tiny()
    fresh.load_state_dict(base)
    load_lora(fresh, path)
    expected = merge_lora(model).state_dict()
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, expected[k], atol=2e-3, rtol=2e-3, msg=k)


def test_training_step_with_lora_updates_only_the_recipe_parameters() -> None:
    model = add_lora(_tiny(), rank=4).train()
    model.cfm.estimator.grad_checkpointing = True
    ssl, spec, mel = torch.randn(1, 32, 12), torch.rand(1, 65, 12), torch.rand(1, 100, 24) * 2 - 1
    n = torch.tensor([12])
    loss = model(
        ssl, spec, mel, n, torch.randint(0, 700, (1, 5)), torch.tensor([5]), 2 * n, prompt_lens=torch.tensor([6])
    )
    loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any("lora_B" in g for g in grads) and any(g.startswith("wns1.") for g in grads)  # B = 0: no grad to A yet
    assert grads <= set(trainable_parameters(model))
