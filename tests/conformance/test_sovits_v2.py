"""SoVITS v2 equals the official networks: state-dict layouts and every ``s2v2_*`` golden case of the fixture folder."""

from __future__ import annotations

import functools

import pytest
import torch

from mockvox.audio.spectral import mel_filterbank, mel_spectrogram_torch, spec_to_mel_torch, spectrogram_torch
from mockvox.losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_l1_loss
from mockvox.models.discriminators import MultiPeriodDiscriminator
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.modules.commons import slice_segments
from tests.conformance.fixtures import (
    Case,
    case_names,
    fixtures_dir,
    key_shapes,
    load_case,
    run_checked,
    scheme_state_dict,
)

pytestmark = pytest.mark.skipif(not fixtures_dir().is_dir(), reason="no GPT-SoVITS fixture folder")

G_KEYS = "s2G_v2_keys_incl_enc_q"
# s2.json data section: the mel of the s2 reconstruction loss (n_fft comes from the spectrogram's bin count).
S2_SAMPLING_RATE, S2_N_MELS, S2_FMIN, S2_FMAX = 32000, 128, 0.0, None


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _assert_same_layout(ours: dict, official: dict) -> None:
    assert sorted(set(official) - set(ours)) == [], "official keys missing in ours"
    assert sorted(set(ours) - set(official)) == [], "our keys unknown to the official layout"
    assert {k: v for k, v in ours.items() if official[k] != v} == {}, "shape mismatches"


@pytest.mark.parametrize(
    ("keys_name", "build"),
    [
        ("s2G_v2_keys_incl_enc_q", lambda: SynthesizerTrn()),
        ("s2G_v2_keys_excl_enc_q", lambda: SynthesizerTrn(use_enc_q=False)),
        ("s2D_v2_keys", lambda: MultiPeriodDiscriminator()),
    ],
)
def test_state_dict_layout_equals_official(keys_name, build):
    _assert_same_layout(_shapes(build()), key_shapes(keys_name))


@functools.cache
def _generator(seed: int) -> SynthesizerTrn:
    model = SynthesizerTrn()
    model.load_state_dict(scheme_state_dict(key_shapes(G_KEYS), seed), strict=True)
    return model.eval()


def _run_extract_latent(case: Case) -> None:
    model, seen = _generator(case.seed), {}
    hook = model.ssl_proj.register_forward_hook(lambda m, i, o: seen.setdefault("ssl_proj_out", o))
    try:
        codes = model.extract_latent(case.input("ssl"))
    finally:
        hook.remove()
    case.check("codes", codes)
    case.check("ssl_proj_out", seen["ssl_proj_out"])


def _run_decode(case: Case) -> None:
    model, seen, p = _generator(case.seed), {}, case.params
    hooks = [
        model.ref_enc.register_forward_hook(lambda m, i, o: seen.setdefault("ge", o)),
        model.enc_p.register_forward_hook(lambda m, i, o: seen.setdefault("enc_p", o)),
        model.flow.register_forward_hook(lambda m, i, o: seen.setdefault("z", o)),
    ]
    args = (case.input("codes"), case.input("text"), [case.input("refer")])
    try:
        wav = model.decode(*args, noise_scale=p["noise_scale"], speed=p["speed"])
    finally:
        for hook in hooks:
            hook.remove()
    wav2 = model.decode(*args, noise_scale=p["noise_scale"], speed=p["speed2"])
    _, m_p, logs_p, _ = seen["enc_p"]
    for name, value in {"ge": seen["ge"], "m_p": m_p, "logs_p": logs_p, "z": seen["z"]}.items():
        case.check(name, value)
    case.check("wav", wav)
    case.check("wav_speed2", wav2)


def check_train_forward(case: Case, model: SynthesizerTrn, sv_emb: torch.Tensor | None = None) -> None:
    """Run the training forward on the case's batch (stored draws injected) and check its outputs and losses."""
    p, spec = case.params, case.input("spec")
    with torch.no_grad():
        out = model(
            case.input("ssl"),
            spec,
            case.input("spec_lengths"),
            case.input("text"),
            case.input("text_lengths"),
            sv_emb,
            noise=case.input("noise_enc_q"),
            uniform=case.input("uniform_slice"),
        )
    for name in ("y_hat", "ids_slice", "z", "z_p", "m_p", "logs_p", "m_q", "logs_q", "z_mask"):
        case.check(name, getattr(out, name))
    case.check("commit_loss", out.commit_loss.reshape(1))
    n_fft, hop = (spec.size(1) - 1) * 2, p["hop_length"]
    frames = p["segment_size"] // hop
    y_mel = slice_segments(
        spec_to_mel_torch(spec, n_fft, S2_N_MELS, S2_SAMPLING_RATE, S2_FMIN, S2_FMAX), out.ids_slice, frames
    )
    y_hat_mel = mel_spectrogram_torch(
        out.y_hat.squeeze(1), n_fft, S2_N_MELS, S2_SAMPLING_RATE, hop, n_fft, S2_FMIN, S2_FMAX
    )
    case.check("loss_mel", (mel_l1_loss(y_mel, y_hat_mel) * p["c_mel"]).reshape(1))
    case.check("loss_kl", (kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.z_mask) * p["c_kl"]).reshape(1))
    case.check("y_slice", slice_segments(case.input("wav"), out.ids_slice * hop, p["segment_size"]))


def _run_train_forward(case: Case) -> None:
    check_train_forward(case, _generator(case.seed))


def _fmap_stats(maps: list[torch.Tensor]) -> torch.Tensor:
    # [n_maps, 3]: mean, unbiased std, mean |x| in float64
    return torch.stack([torch.stack([f.double().mean(), f.double().std(), f.double().abs().mean()]) for f in maps])


def check_discriminator(case: Case, net: MultiPeriodDiscriminator, keys_name: str) -> None:
    """Load the scheme weights for ``keys_name`` into ``net`` and check logits, feature-map statistics and losses."""
    net.load_state_dict(scheme_state_dict(key_shapes(keys_name), case.seed), strict=True)
    with torch.no_grad():
        logits_r, logits_g, fmaps_r, fmaps_g = net.eval()(case.input("y"), case.input("y_hat"))
    for i in range(len(net.discriminators)):
        case.check(f"logits_r_{i}", logits_r[i])
        case.check(f"logits_g_{i}", logits_g[i])
        case.check(f"fmap_stats_r_{i}", _fmap_stats(fmaps_r[i]))
        case.check(f"fmap_stats_g_{i}", _fmap_stats(fmaps_g[i]))
    case.check("loss_disc", discriminator_loss(logits_r, logits_g)[0].reshape(1))
    case.check("loss_gen", generator_loss(logits_g)[0].reshape(1))
    case.check("loss_fm", feature_loss(fmaps_r, fmaps_g).reshape(1))


def _run_discriminator(case: Case) -> None:
    check_discriminator(case, MultiPeriodDiscriminator(), "s2D_v2_keys")


def _run_spec_mel(case: Case) -> None:
    wave, s, m = case.input("wave"), case.params["spectrogram"], case.params["mel"]
    spec = spectrogram_torch(wave, s["n_fft"], s["sampling_rate"], s["hop_size"], s["win_size"], s["center"])
    case.check("spec", spec)
    mel_args = (m["n_fft"], m["num_mels"], m["sampling_rate"])
    case.check("mel_from_spec", spec_to_mel_torch(spec, *mel_args, m["fmin"], m["fmax"]))
    mel = mel_spectrogram_torch(wave, *mel_args, m["hop_size"], m["win_size"], m["fmin"], m["fmax"], m["center"])
    case.check("mel", mel)
    basis = mel_filterbank(
        m["sampling_rate"], m["n_fft"], m["num_mels"], m["fmin"], m["fmax"], torch.float32, wave.device
    )
    case.check("mel_basis", basis)


RUNNERS = {
    "s2v2_extract_latent": _run_extract_latent,
    "s2v2_decode": _run_decode,
    "s2v2_train_forward": _run_train_forward,
    "s2v2_discriminator": _run_discriminator,
    "s2v2_spec_mel": _run_spec_mel,
}


@pytest.mark.parametrize("name", case_names("s2v2_"))
def test_golden_case(name):
    assert name in RUNNERS, f"no runner for fixture case {name!r}; known: {sorted(RUNNERS)}"
    run_checked(load_case(name), RUNNERS[name])
