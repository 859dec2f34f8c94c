"""The v2Pro speaker-verification chain equals the official one: every ``sv_*`` golden case of the fixture folder.

Resampling (torchaudio ``Resample``), Kaldi fbank (``eres2net/kaldi.py``) and ERes2NetV2 w24 s4 (``forward3`` and
``forward``) with the scheme weights, plus the whole chain from 32 kHz audio to the 20480-d embedding.
"""

from __future__ import annotations

import functools
import os

import pytest
import torch

from mockvox.audio.kaldi import fbank, fbank_batch, kaldi_mel_banks, sinc_resample, sinc_resample_kernel
from mockvox.models.eres2net import ERes2NetV2, SpeakerEncoder, load_eres2netv2
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

SV_KEYS = "eres2netv2_w24s4_keys"
STRICT = os.environ.get("MOCKVOX_CONFORMANCE_STRICT") == "1"  # the fixtures' optional CPU-fp32 tolerance tier
# Maps summarised in sv_embedding's stage_stats, in row order ("bn1" is read before the stem's ReLU).
STAGES = ("bn1", "layer1", "layer2", "layer3", "layer4", "layer3_ds", "fuse34")


def test_state_dict_layout_equals_official():
    ours = {k: tuple(v.shape) for k, v in ERes2NetV2().state_dict().items()}
    official = key_shapes(SV_KEYS)
    assert sorted(set(official) - set(ours)) == [], "official keys missing in ours"
    assert sorted(set(ours) - set(official)) == [], "our keys unknown to the official layout"
    assert {k: v for k, v in ours.items() if official[k] != v} == {}, "shape mismatches"


def test_loader_reads_a_bare_state_dict(tmp_path):
    """``sv/pretrained_eres2netv2w24s4ep4.ckpt`` is ``torch.save(state_dict)``: loaded strictly, in eval mode."""
    state = ERes2NetV2().state_dict()
    torch.save(state, tmp_path / "sv.ckpt")
    model = load_eres2netv2(tmp_path / "sv.ckpt")
    assert not model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    torch.save({"weight": state}, tmp_path / "wrapped.ckpt")
    with pytest.raises(ValueError, match="bare ERes2NetV2 state dict"):
        load_eres2netv2(tmp_path / "wrapped.ckpt")


@functools.cache
def _sv_model(seed: int) -> ERes2NetV2:
    model = ERes2NetV2()
    model.load_state_dict(scheme_state_dict(key_shapes(SV_KEYS), seed), strict=True)
    return model.eval()


def _run_resample(case: Case) -> None:
    p = case.params
    kernel, _ = sinc_resample_kernel(p["orig_freq"], p["new_freq"], p["lowpass_filter_width"], p["rolloff"])
    case.check("kernel", kernel)
    wave = sinc_resample(case.input("wav32k"), p["orig_freq"], p["new_freq"], p["lowpass_filter_width"], p["rolloff"])
    case.check("wav16k", wave)


def _run_fbank(case: Case) -> None:
    p = case.params
    options = dict(num_mel_bins=p["num_mel_bins"], sample_frequency=p["sample_frequency"], dither=p["dither"])
    case.check("feats", torch.stack([fbank(w[None], **options) for w in case.input("wav16k")]))
    batch = case.input("batch_wav16k")
    case.check("batch_feats", fbank_batch(batch, **options))
    case.check("batch_feats", torch.stack([fbank(w, **options) for w in batch]))  # item by item, [N] input
    banks = kaldi_mel_banks(
        p["num_mel_bins"], p["padded_window_size"], float(p["sample_frequency"]), p["low_freq"], p["high_freq"]
    )
    case.check("mel_banks", banks)


def _stats(x: torch.Tensor) -> list[float]:
    x = x.double()
    return [x.mean().item(), x.std().item(), x.abs().mean().item()]


def _run_embedding(case: Case) -> None:
    model, stats, fmaps = _sv_model(case.seed), {}, []

    def keep(name):
        def hook(module, args, out):
            stats[name] = _stats(torch.relu(out) if name == "bn1" else out)
            if name == "fuse34":
                fmaps.append(out)

        return hook

    hooks = [getattr(model, name).register_forward_hook(keep(name)) for name in STAGES]
    try:
        with torch.no_grad():
            sv_emb = model.sv_embedding(case.input("feats"))  # the official forward3
            stage_stats = torch.tensor([stats[name] for name in STAGES], dtype=torch.float64)
            embedding = model.head(fmaps[-1])
            batch_embedding = model(case.input("batch_feats"))
            batch_sv_emb = fmaps[-1].flatten(1, 2).mean(-1)
    finally:
        for hook in hooks:
            hook.remove()
    case.check("sv_emb", sv_emb)
    case.check("embedding", embedding)
    case.check("stage_stats", stage_stats)
    case.check("batch_embedding", batch_embedding)
    case.check("batch_sv_emb", batch_sv_emb)


RUNNERS = {"sv_resample": _run_resample, "sv_fbank": _run_fbank, "sv_embedding": _run_embedding}


@pytest.mark.parametrize("name", case_names("sv_"))
def test_golden_case(name):
    assert name in RUNNERS, f"no runner for fixture case {name!r}; known: {sorted(RUNNERS)}"
    run_checked(load_case(name), RUNNERS[name])


@pytest.mark.skipif(not all(case_names(n) for n in ("sv_resample", "sv_fbank", "sv_embedding")), reason="no sv cases")
def test_chain_from_32k_audio():
    """Resample -> fbank -> network on the 32 kHz reference gives the stored embedding of its fbank."""
    resample, embedding = load_case("sv_resample"), load_case("sv_embedding")
    fbank_case = load_case("sv_fbank")  # the fixtures chain: wav16k -> feats -> sv_emb
    assert torch.equal(resample.expected("wav16k"), fbank_case.input("wav16k"))
    assert torch.equal(fbank_case.expected("feats"), embedding.input("feats"))
    encoder = SpeakerEncoder(_sv_model(embedding.seed), sample_rate=resample.params["orig_freq"])
    embedding.check("sv_emb", encoder(resample.input("wav32k")), STRICT)
