"""SoVITS v4 on the tiny preset: shapes, RoPE convention, CFM sampling/loss, chunked generation and stitching."""

from __future__ import annotations

import pytest
import torch

from mockvox.audio.mel_v4 import denorm_spec, mel_v4, norm_spec
from mockvox.models.sovits_v4 import (
    ChunkConfig,
    SynthesizerTrnV3,
    align_prompt,
    generate_batched,
    generate_sequential,
    plan_batched_chunks,
    sola_stitch,
    synthesize,
)
from mockvox.models.vocoder_v4 import TINY_VOCODER, UPSAMPLE, build_vocoder
from mockvox.modules.cfm import flow_matching_loss, random_prompt_lengths
from mockvox.modules.dit import RotaryEmbedding, apply_rotary


@pytest.fixture(scope="module")
def model() -> SynthesizerTrnV3:
    torch.manual_seed(0)
    return SynthesizerTrnV3.tiny().eval()


def _inputs(t25: int = 6, n_phones: int = 5, ref_frames: int = 20):
    gen = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 16, (1, 1, t25), generator=gen)
    phones = torch.randint(0, 700, (1, n_phones), generator=gen)
    refer = torch.rand(1, 65, ref_frames, generator=gen)
    return codes, phones, refer


def test_decode_encp_lengths(model) -> None:
    codes, phones, refer = _inputs(t25=6)
    fea, ge = model.decode_encp(codes, phones, refer)
    assert fea.shape == (1, 32, 24) and ge.shape == (1, 24, 1)
    slow, _ = model.decode_encp(codes, phones, refer, ge, speed=0.8)
    assert slow.shape == (1, 32, 2 * (int(12 / 0.8) + 1))
    valid = int(24 / 0.8) + 1
    assert slow[..., valid:].abs().max() == 0 and slow[..., :valid].abs().max() > 0


def test_rotary_is_interleaved_complex_rotation_of_first_head_dim() -> None:
    rope = RotaryEmbedding(8)
    cos, sin = rope(5)
    x = torch.randn(2, 5, 12)
    y = apply_rotary(x, cos, sin)
    angles = torch.arange(5.0)[:, None] * rope.inv_freq[None, :]  # [T, 4]
    z = torch.view_as_complex(x[..., :8].reshape(2, 5, 4, 2).contiguous()) * torch.polar(
        torch.ones_like(angles), angles
    )
    torch.testing.assert_close(y[..., :8], torch.view_as_real(z).reshape(2, 5, 8))
    assert torch.equal(y[..., 8:], x[..., 8:])


def test_cfm_keeps_prompt_zero_and_is_deterministic_given_noise(model) -> None:
    mu = torch.randn(1, 30, 32)
    prompt = torch.rand(1, 100, 10)
    noise = torch.randn(1, 100, 30)
    lens = torch.tensor([30])
    a = model.cfm.inference(mu, lens, prompt, 3, noise=noise.clone())
    b = model.cfm.inference(mu, lens, prompt, 3, noise=noise.clone())
    assert a.shape == (1, 100, 30) and torch.equal(a, b)
    assert a[..., :10].abs().max() == 0 and a[..., 10:].abs().max() > 0


def test_cfm_guidance_equals_separate_unconditional_pass(model) -> None:
    torch.manual_seed(1)
    mu, prompt, noise = torch.randn(1, 16, 32), torch.rand(1, 100, 4), torch.randn(1, 100, 16)
    lens, rate = torch.tensor([16]), 0.7
    got = model.cfm.inference(mu, lens, prompt, 1, inference_cfg_rate=rate, noise=noise.clone())
    est = model.cfm.estimator
    x = noise.clone()
    x[..., :4] = 0
    cond = torch.zeros_like(x)
    cond[..., :4] = prompt
    t, d = torch.zeros(1), torch.ones(1)
    with torch.inference_mode():
        v = est(x, cond, lens, t, d, mu.transpose(1, 2)).transpose(1, 2)
        neg = est(x, cond, lens, t, d, mu.transpose(1, 2), drop_audio_cond=True, drop_text=True).transpose(1, 2)
    want = x + v + (v - neg) * rate
    want[..., :4] = 0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_flow_matching_loss_averages_mse_over_generated_frames() -> None:
    x1 = torch.randn(2, 100, 20)
    lens, prompt = torch.tensor([20, 15]), torch.tensor([5, 0])
    calls = []

    def zero_estimator(x, cond, x_lens, t, dt, mu):  # records what the loss feeds the DiT
        calls.append((x.clone(), cond.clone(), t.clone(), dt.clone()))
        return torch.zeros(x.shape[0], x.shape[2], x.shape[1])

    loss = flow_matching_loss(zero_estimator, x1, lens, prompt, None, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    t, x0 = torch.rand([2], generator=gen), torch.randn(x1.shape, generator=gen)
    vt = x1 - x0
    want = ((vt[0, :, 5:20] ** 2).mean() + (vt[1, :, 0:15] ** 2).mean()) / 2
    torch.testing.assert_close(loss, want)
    x_in, cond, t_in, dt = calls[0]
    assert (
        x_in[0, :, :5].abs().max() == 0
        and torch.equal(cond[0, :, :5], x1[0, :, :5])
        and cond[0, :, 5:].abs().max() == 0
    )
    torch.testing.assert_close(x_in[0, :, 5:], x0[0, :, 5:] + t[0] * vt[0, :, 5:])
    assert torch.equal(t_in, t) and dt.abs().max() == 0
    calls.clear()
    flow_matching_loss(
        zero_estimator, x1, lens, prompt, None, shortcut=True, generator=torch.Generator().manual_seed(0)
    )
    assert len(calls) == 3  # two detached half-steps, then the trained prediction with dt = 2d
    d = calls[1][2] - calls[0][2]
    assert torch.equal(calls[2][3], 2 * d) and ((d >= 1 / 128) & (d <= 1 / 4)).all()
    p = random_prompt_lengths(torch.tensor([300, 30]), torch.Generator().manual_seed(0))
    assert (p >= 0).all() and (p <= torch.tensor([200, 20])).all()


def test_training_forward_reaches_trainable_modules_only() -> None:
    torch.manual_seed(0)
    net = SynthesizerTrnV3.tiny().train()
    modes = []  # frozen parts run in eval mode inside the forward (upstream), and keep the model's mode outside
    net.enc_p.register_forward_pre_hook(lambda m, _: modes.append(m.training))
    ssl, spec = torch.randn(2, 32, 12), torch.rand(2, 65, 12)
    mel = torch.rand(2, 100, 24) * 2 - 1
    loss = net(ssl, spec, mel, torch.tensor([12, 10]), torch.randint(0, 700, (2, 5)), torch.tensor([5, 4]),
               torch.tensor([24, 20]))  # fmt: skip
    loss.backward()
    assert net.wns1.pre.weight.grad is not None and net.cfm.estimator.proj_out.weight.grad is not None
    assert net.ref_enc.fc.fc.weight.grad is not None
    assert net.enc_p.proj.weight.grad is None and modes == [False]
    assert all(m.training for m in net.modules())  # nothing for Lightning's eval-mode warning


def test_plan_batched_chunks_follows_official_loop() -> None:
    assert plan_batched_chunks(800, 500, 12) == ([0, 488], 176)
    assert plan_batched_chunks(488, 500, 12) == ([0, 488], 488)  # official: a last chunk of overlap only
    assert plan_batched_chunks(400, 500, 12) == ([0], 88)
    assert plan_batched_chunks(500, 500, 12) == ([0, 488], 476)
    with pytest.raises(ValueError):
        plan_batched_chunks(100, 12, 12)


def test_sola_stitch_rebuilds_a_continuous_signal() -> None:
    s = torch.randn(3000)
    ov = 64
    frags = [s[:1000], s[1000 - ov : 2000], s[2000 - ov :]]
    torch.testing.assert_close(sola_stitch(frags, ov, search=32), s)


def test_chunked_generation_lengths(model) -> None:
    chunk = ChunkConfig(t_ref=8, t_chunk=20, overlap=2)
    fea_ref, mel_ref = align_prompt(torch.randn(1, 32, 15), torch.rand(1, 100, 12), chunk.t_ref)
    assert fea_ref.shape[-1] == mel_ref.shape[-1] == 8
    todo = torch.randn(1, 32, 29)
    assert generate_sequential(model.cfm, fea_ref, mel_ref, todo, 2, chunk).shape == (1, 100, 29)
    mel, pad = generate_batched(model.cfm, fea_ref, mel_ref, todo, 2, chunk)
    starts, want_pad = plan_batched_chunks(29, 12, 2)
    assert mel.shape == (1, 100, 12 * len(starts)) and pad == want_pad
    vocoder = build_vocoder(**TINY_VOCODER)
    for batched in (False, True):
        wavs = synthesize(model, vocoder, torch.randn(1, 32, 15), torch.rand(1, 100, 12),
                          [todo[..., :13], todo[..., 13:]], 2, batched, chunk)  # fmt: skip
        assert wavs[0].shape[0] == 13 * UPSAMPLE
        # SOLA consumes up to `sola_search` samples per splice from the end (as upstream)
        assert 16 * UPSAMPLE - chunk.sola_search * 3 <= wavs[1].shape[0] <= 16 * UPSAMPLE


def test_mel_v4_shape_and_normalisation() -> None:
    wave = torch.randn(1, 32000) * 0.1
    mel = mel_v4(wave)
    assert mel.shape == (1, 100, 100)
    torch.testing.assert_close(denorm_spec(norm_spec(mel)), mel)
    assert norm_spec(torch.tensor(-12.0)) == -1 and norm_spec(torch.tensor(2.0)) == 1


def test_vocoder_loads_the_official_bare_state_dict(tmp_path) -> None:
    from mockvox.models.vocoder_v4 import load_vocoder

    torch.manual_seed(0)
    source = build_vocoder(**TINY_VOCODER)
    torch.save(source.state_dict(), tmp_path / "vocoder.pth")  # bare dict of plain weights, like vocoder.pth
    loaded = load_vocoder(tmp_path / "vocoder.pth", **TINY_VOCODER)
    mel = torch.rand(1, 100, 7) * 10 - 10
    with torch.inference_mode():
        wav = loaded(mel)
        assert wav.shape == (1, 1, 7 * UPSAMPLE)
        torch.testing.assert_close(wav, source(mel))


def test_bf16_dit_keeps_fp32_euler_state_and_stays_close(model) -> None:
    import copy

    mu, prompt, noise = torch.randn(1, 24, 32), torch.rand(1, 100, 6), torch.randn(1, 100, 24)
    lens = torch.tensor([24])
    ref = model.cfm.inference(mu, lens, prompt, 2, noise=noise.clone())
    half = copy.deepcopy(model.cfm).to(torch.bfloat16)
    got = half.inference(mu, lens, prompt, 2, noise=noise.clone())
    assert got.dtype == torch.float32 and got[..., :6].abs().max() == 0
    assert (got - ref).abs().max() / ref.abs().max() < 0.05
