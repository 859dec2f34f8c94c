"""SoVITS v2Pro/v2ProPlus on the tiny preset: speaker-verification fusion, reference averaging, training, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mockvox.infer.streaming import FrameNoise, StreamConfig, V2Chunks
from mockvox.models.discriminators import V2PRO_PERIODS, MultiPeriodDiscriminator
from mockvox.models.sovits_common import SoVITSBase
from mockvox.models.sovits_v2 import TINY, TINY_PRO, SynthesizerTrn

SPEC, SV = TINY["spec_channels"], TINY_PRO["sv_dim"]


@pytest.fixture(scope="module")
def model() -> SynthesizerTrn:
    torch.manual_seed(0)
    net = SynthesizerTrn.tiny(version="v2Pro").eval()
    with torch.no_grad():  # PReLU slopes away from their 0.25 init, as in trained weights (and the fixtures)
        net.prelu.weight.uniform_(0.5, 1.5)
    return net


def _inputs(seed: int = 1, t25: int = 8):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, TINY["codebook_size"], (1, 1, t25), generator=g)
    text = torch.randint(1, 732, (1, 6), generator=g)
    return codes, text, torch.rand(1, SPEC, 25, generator=g), torch.randn(1, SV, generator=g)


def test_pro_modules_and_widths(model):
    assert (model.version, model.is_pro, model.gin_channels, model.mrte_hidden) == ("v2Pro", True, 32, 24)
    assert (model.sv_emb.in_features, model.sv_emb.out_features) == (SV, 32)
    assert (model.ge_to512.in_features, model.ge_to512.out_features, model.prelu.num_parameters) == (32, 24, 32)
    assert model.enc_q.enc.cond_layer.in_channels == model.dec.cond.in_channels == 32
    assert not hasattr(SynthesizerTrn.tiny(), "sv_emb")


def test_reference_embedding_is_prelu_of_the_sum(model):
    _, _, ref, sv = _inputs()
    with torch.no_grad():
        plain = SoVITSBase.reference_embedding(model, ref)  # ref_enc alone
        expected = F.prelu(plain + model.sv_emb(sv).unsqueeze(-1), model.prelu.weight)
        assert torch.allclose(model.reference_embedding(ref, sv_emb=sv), expected, atol=1e-6)


def test_several_references_are_averaged_after_the_prelu(model):
    codes, text, ref, sv = _inputs()
    _, _, ref2, sv2 = _inputs(seed=2)
    with torch.no_grad():
        pairs = ((ref, sv), (ref2, sv2))
        ges = [model.reference_embedding(r, sv_emb=s) for r, s in pairs]
        assert torch.allclose(model.style([ref, ref2], [sv, sv2]), (ges[0] + ges[1]) / 2, atol=1e-6)
        raw = [SoVITSBase.reference_embedding(model, r) + model.sv_emb(s)[..., None] for r, s in pairs]
        assert not torch.allclose(model.style([ref, ref2], [sv, sv2]), model.prelu((raw[0] + raw[1]) / 2))
    one = model.decode(codes, text, ref, noise_scale=0.0, sv_emb=sv)
    assert torch.equal(one, model.decode(codes, text, [ref, ref], noise_scale=0.0, sv_emb=[sv, sv]))
    assert not torch.allclose(one, model.decode(codes, text, ref, noise_scale=0.0, sv_emb=sv2))


def test_stepwise_and_streamed_synthesis_equal_decode(model):
    """``encode_codes`` takes the fused ge and projects it for MRTE itself: the pipeline's and streaming's path."""
    codes, text, ref, sv = _inputs()
    with torch.no_grad():
        ge = model.reference_embedding(ref, sv_emb=sv)
        _, m_p, _, y_mask = model.encode_codes(codes, text, ge, 1.25)
        wav = model.decode_latent(m_p, y_mask, ge)
    assert torch.equal(wav, model.decode(codes, text, ref, noise_scale=0.0, speed=1.25, sv_emb=sv))
    assert wav.shape == (1, 1, (int(2 * 8 / 1.25) + 1) * model.hop_length)
    chunks = V2Chunks(model, ge, text, 0.0, 1.0, FrameNoise(0, model.inter_channels), StreamConfig("token"))
    streamed = chunks.push(codes.view(-1), codes.numel(), final=True)
    assert np.array_equal(streamed, model.decode(codes, text, ref, noise_scale=0.0, sv_emb=sv)[0, 0].numpy())


def test_training_forward_trains_the_fusion():
    torch.manual_seed(0)
    net = SynthesizerTrn.tiny(version="v2ProPlus").train()
    g = torch.Generator().manual_seed(3)
    ssl, spec = torch.randn(2, TINY["ssl_dim"], 20, generator=g), torch.rand(2, SPEC, 20, generator=g)
    text = torch.randint(1, 732, (2, 9), generator=g)
    out = net(ssl, spec, torch.tensor([20, 16]), text, torch.tensor([9, 7]), torch.randn(2, SV, generator=g))
    assert out.y_hat.shape == (2, 1, TINY["segment_size"] * net.hop_length)
    out.y_hat.abs().mean().add(out.m_p.pow(2).mean()).backward()
    for name in ("sv_emb", "prelu", "ge_to512", "ref_enc"):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(net, name).parameters()), name


def test_clear_errors(model):
    codes, text, ref, sv = _inputs()
    with pytest.raises(ValueError, match="needs the speaker-verification embedding"):
        model.decode(codes, text, ref)
    with pytest.raises(ValueError, match="2 sv embeddings for 1 references"):
        model.decode(codes, text, [ref], sv_emb=[sv, sv])
    with pytest.raises(ValueError, match="only"):
        SynthesizerTrn.tiny().decode(codes, text, ref, sv_emb=sv)
    with pytest.raises(ValueError, match="accepted: v2, v2Pro, v2ProPlus"):
        SynthesizerTrn.tiny(version="v3")
    with pytest.raises(ValueError, match="mrte_hidden"):  # only the Pro versions project ge for MRTE
        SynthesizerTrn.tiny(gin_channels=32)


def test_official_hparams_pick_the_version():
    hps = {
        "train": {"segment_size": 128},
        "data": {"filter_length": 128, "hop_length": 16},
        "model": {**{k: v for k, v in TINY.items() if k not in ("spec_channels", "segment_size")}, **TINY_PRO},
    }
    net = SynthesizerTrn.from_hparams({**hps, "model": {**hps["model"], "version": "v2ProPlus"}})
    assert net.version == "v2ProPlus" and net.sv_emb.in_features == SV
    with pytest.raises(ValueError, match="not a v2 model"):
        SynthesizerTrn.from_hparams({**hps, "model": {**hps["model"], "version": "v4"}})


def test_discriminator_for_each_version():
    assert [d.period for d in MultiPeriodDiscriminator.for_version("v2ProPlus").discriminators[1:]] == list(
        V2PRO_PERIODS
    )
    assert len(MultiPeriodDiscriminator.for_version("v2").discriminators) == 6
    with pytest.raises(ValueError, match="accepted: v2, v2Pro, v2ProPlus"):
        MultiPeriodDiscriminator.for_version("v4")
