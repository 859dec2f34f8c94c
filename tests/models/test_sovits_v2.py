"""SoVITS v2 on the tiny preset: shapes, gradients, flow inversion, weight-norm folding, quantizer training."""

from __future__ import annotations

import pytest
import torch

from mockvox.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from mockvox.models.discriminators import MultiPeriodDiscriminator
from mockvox.models.sovits_v2 import TINY, SynthesizerTrn
from mockvox.modules.commons import WNConv1d
from mockvox.modules.hifigan import Generator


@pytest.fixture(scope="module")
def model() -> SynthesizerTrn:
    torch.manual_seed(0)
    return SynthesizerTrn.tiny().eval()


def _batch(lengths=(20, 14), n_text=(9, 6), ssl_dim=TINY["ssl_dim"], spec_ch=TINY["spec_channels"]):
    g = torch.Generator().manual_seed(1)
    t = max(lengths)
    ssl = torch.randn(len(lengths), ssl_dim, t, generator=g)
    spec = torch.rand(len(lengths), spec_ch, t, generator=g)
    for i, n in enumerate(lengths):
        ssl[i, :, n:] = 0
        spec[i, :, n:] = 0
    text = torch.randint(1, 732, (len(lengths), max(n_text)), generator=g)
    return ssl, spec, torch.tensor(lengths), text, torch.tensor(n_text)


def test_tiny_builds_every_block_and_stays_small(model):
    names = {k.split(".")[0] for k in model.state_dict()}
    assert names == {"enc_p", "dec", "enc_q", "flow", "ref_enc", "ssl_proj", "quantizer"}
    assert sum(p.numel() for p in model.parameters()) < 300_000
    assert model.hop_length == 16


def test_extract_latent_codes(model):
    codes = model.extract_latent(torch.randn(2, TINY["ssl_dim"], 21))
    assert codes.shape == (2, 1, 10) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < TINY["codebook_size"]


@pytest.mark.parametrize("speed", [1.0, 1.25, 0.8])
def test_decode_length_follows_speed(model, speed):
    codes = torch.randint(0, TINY["codebook_size"], (1, 1, 12))
    wav = model.decode(codes, torch.randint(0, 732, (1, 7)), torch.rand(1, TINY["spec_channels"], 30), 0.5, speed)
    frames = 24 if speed == 1 else int(24 / speed) + 1
    assert wav.shape == (1, 1, frames * model.hop_length)
    assert wav.abs().max() <= 1 and torch.isfinite(wav).all()


def test_decode_is_deterministic_at_zero_noise_and_averages_references(model):
    codes, text = torch.randint(0, TINY["codebook_size"], (1, 1, 8)), torch.randint(0, 732, (1, 5))
    ref = torch.rand(1, TINY["spec_channels"], 25)
    a = model.decode(codes, text, ref, noise_scale=0.0)
    assert torch.equal(a, model.decode(codes, text, [ref, ref], noise_scale=0.0))
    other = model.decode(codes, text, torch.rand(1, TINY["spec_channels"], 25), noise_scale=0.0)
    assert not torch.allclose(a, other)


def test_flow_inverts(model):
    x, mask = torch.randn(1, TINY["inter_channels"], 10), torch.ones(1, 1, 10)
    g = torch.randn(1, TINY["gin_channels"], 1)
    with torch.no_grad():
        for p in model.flow.parameters():  # zero-initialised post layers would make the flow a permutation
            p.add_(0.05 * torch.randn_like(p))
        y = model.flow(x, mask, g=g)
        assert not torch.allclose(y, x)
        assert torch.allclose(model.flow(y, mask, g=g, reverse=True), x, atol=1e-5)


def test_training_forward_shapes_and_gradients():
    torch.manual_seed(0)
    net = SynthesizerTrn.tiny().train()
    modes = []  # the frozen quantizer runs in eval mode inside the forward only
    net.quantizer.register_forward_pre_hook(lambda m, _: modes.append(m.training))
    ssl, spec, lengths, text, text_lengths = _batch()
    out = net(ssl, spec, lengths, text, text_lengths)
    assert modes == [False] and all(m.training for m in net.modules())
    seg = TINY["segment_size"]
    assert out.y_hat.shape == (2, 1, seg * net.hop_length)
    assert out.z.shape == out.z_p.shape == out.m_p.shape == out.m_q.shape == (2, TINY["inter_channels"], 20)
    assert out.z_mask[1, 0, 14:].sum() == 0 and out.z_mask[1, 0, :14].all()
    assert (out.ids_slice >= 0).all() and (out.ids_slice <= lengths - seg).all()
    assert out.commit_loss.item() == 0  # frozen quantizer
    loss = out.y_hat.abs().mean() + kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.z_mask)
    loss.backward()
    for name in ("enc_p", "enc_q", "flow", "dec", "ref_enc"):
        grads = [p.grad for p in getattr(net, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    assert all(p.grad is None for p in net.ssl_proj.parameters())


def test_injected_draws_make_training_forward_reproducible():
    net = SynthesizerTrn.tiny().eval()
    ssl, spec, lengths, text, text_lengths = _batch()
    noise, uniform = torch.randn(2, TINY["inter_channels"], 20), torch.tensor([0.3, 0.9])
    with torch.no_grad():
        a = net(ssl, spec, lengths, text, text_lengths, noise=noise, uniform=uniform)
        b = net(ssl, spec, lengths, text, text_lengths, noise=noise, uniform=uniform)
    assert torch.equal(a.y_hat, b.y_hat) and torch.equal(a.ids_slice, b.ids_slice)
    assert a.ids_slice.tolist() == [int(0.3 * 13), int(0.9 * 7)]


def test_unfrozen_quantizer_initialises_and_learns():
    torch.manual_seed(0)
    net = SynthesizerTrn.tiny(freeze_quantizer=False, codebook_size=4).train()
    book = net.quantizer.vq.layers[0]._codebook
    book.inited.zero_()
    ssl, spec, lengths, text, text_lengths = _batch(lengths=(20, 20))
    out = net(ssl, spec, lengths, text, text_lengths)
    assert book.inited.item() == 1 and book.embed.abs().sum() > 0
    assert out.commit_loss.item() > 0
    out.commit_loss.backward()
    assert net.ssl_proj.weight.grad is not None


def test_remove_weight_norm_keeps_outputs(model):
    codes, text = torch.randint(0, TINY["codebook_size"], (1, 1, 6)), torch.randint(0, 732, (1, 5))
    ref = torch.rand(1, TINY["spec_channels"], 20)
    folded = SynthesizerTrn.tiny()
    folded.load_state_dict(model.state_dict())
    folded.eval().remove_weight_norm()
    assert not any(k.endswith(("weight_g", "weight_v")) for k in folded.state_dict())
    assert torch.allclose(model.decode(codes, text, ref, 0.0), folded.decode(codes, text, ref, 0.0), atol=1e-6)


def test_weight_norm_cache_follows_in_place_updates():
    conv = WNConv1d(3, 4, 3)
    x = torch.randn(1, 3, 8)
    with torch.no_grad():
        before = conv(x)
        conv.weight_g.mul_(2)
        assert torch.allclose(conv(x) - conv.bias[:, None], 2 * (before - conv.bias[:, None]), atol=1e-6)


def test_plain_generator_for_vocoders():
    gen = Generator(8, "1", [3], [[1, 3, 5]], [4, 2], 16, [8, 4], gin_channels=0, is_bias=True, weight_norm=False)
    assert "conv_post.bias" in gen.state_dict() and "ups.0.weight" in gen.state_dict()
    assert gen(torch.randn(2, 8, 5)).shape == (2, 1, 40)
    gen2 = Generator(8, "2", [3], [[1, 3]], [2], 16, [4], gin_channels=6)
    assert gen2(torch.randn(1, 8, 5), g=torch.randn(1, 6, 1)).shape == (1, 1, 10)


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_channels_last_generator_equals_upstream_layout(resblock):
    torch.manual_seed(0)
    dilations = [[1, 3, 5], [1, 3, 5]] if resblock == "1" else [[1, 3], [1, 3]]
    gen = Generator(8, resblock, [3, 5], dilations, [4, 2], 16, [8, 4], gin_channels=6).eval()
    x, g = torch.randn(2, 8, 7), torch.randn(2, 6, 1)
    with torch.no_grad():
        fast = gen(x, g)
        gen.channels_last = False
        assert torch.allclose(fast, gen(x, g), atol=1e-6)
    assert fast.shape == (2, 1, 56) and fast.is_contiguous()


def test_bfloat16_decode_tracks_float32(model):
    codes, text = torch.randint(0, TINY["codebook_size"], (1, 1, 10)), torch.randint(0, 732, (1, 6))
    ref = torch.rand(1, TINY["spec_channels"], 30)
    ref32 = model.decode(codes, text, ref, 0.0)
    half = SynthesizerTrn.tiny()
    half.load_state_dict(model.state_dict())
    out = half.eval().to(torch.bfloat16).decode(codes, text, ref, 0.0)
    assert out.dtype == torch.float32
    assert torch.corrcoef(torch.stack([out.flatten(), ref32.flatten()]))[0, 1] > 0.95


def test_discriminator_and_gan_losses():
    torch.manual_seed(0)
    net = MultiPeriodDiscriminator().eval()
    y, y_hat = 0.1 * torch.randn(1, 1, 2048), 0.1 * torch.randn(1, 1, 2048)
    with torch.no_grad():
        logits_r, logits_g, fmaps_r, fmaps_g = net(y, y_hat)
    assert len(logits_r) == 6 and [len(f) for f in fmaps_r] == [7, 6, 6, 6, 6, 6]
    assert feature_loss(fmaps_r, fmaps_r).item() == 0 and feature_loss(fmaps_r, fmaps_g).item() > 0
    ones = [torch.ones(1, 3)] * 2
    zeros = [torch.zeros(1, 3)] * 2
    assert discriminator_loss(ones, zeros)[0].item() == 0 and discriminator_loss(zeros, ones)[0].item() == 4
    assert generator_loss(ones)[0].item() == 0 and generator_loss(zeros)[0].item() == 2


def test_from_official_hparams():
    hps = {
        "train": {"segment_size": 128},
        "data": {"filter_length": 128, "hop_length": 16},
        "model": {
            **{k: v for k, v in TINY.items() if k not in ("spec_channels", "segment_size")},
            "n_layers_q": 3,
            "use_spectral_norm": False,
            "semantic_frame_rate": "25hz",
            "freeze_quantizer": True,
        },
    }
    net = SynthesizerTrn.from_hparams(hps)
    assert net.segment_size == 8 and net.enc_q.pre.in_channels == 65
    with pytest.raises(ValueError, match="semantic_frame_rate"):
        SynthesizerTrn.from_hparams({**hps, "model": {**hps["model"], "semantic_frame_rate": "50hz"}})
