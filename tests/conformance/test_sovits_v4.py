"""SoVITS v4 equals the official networks: key lists and every discovered ``v4_*`` golden case."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mockvox.audio.mel_v4 import V4_MEL, mel_v4, norm_spec
from mockvox.audio.spectral import mel_filterbank
from mockvox.models.lora import add_lora, exported_keys, merge_lora
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.models.vocoder_v4 import build_vocoder
from tests.conformance.fixtures import Case, case_names, fixtures_dir, key_shapes, load_case, scheme_state_dict

pytestmark = pytest.mark.skipif(not fixtures_dir().is_dir(), reason="no GPT-SoVITS fixture folder")


@pytest.fixture(scope="module")
def model_by_seed() -> Callable[[int], SynthesizerTrnV3]:
    """The full-size v4 generator (DiT 1024 x 22) filled with the scheme, built once per seed."""
    built: dict[int, SynthesizerTrnV3] = {}

    def get(seed: int) -> SynthesizerTrnV3:
        if seed not in built:
            built.clear()  # one 1.5 GB model at a time
            model = SynthesizerTrnV3()
            model.load_state_dict(scheme_state_dict(key_shapes("s2G_v4_keys"), seed), strict=True)
            built[seed] = model.eval()
        return built[seed]

    return get


def run_encoder(case: Case, model_by_seed) -> dict[str, torch.Tensor]:
    model, i, p = model_by_seed(case.seed), case.input, case.params
    fea_ref, ge = model.decode_encp(i("prompt_codes"), i("prompt_phones"), i("refer"))
    fea_todo, _ = model.decode_encp(i("codes"), i("phones"), i("refer"), ge, p["speed"])
    fea_todo2, _ = model.decode_encp(i("codes"), i("phones"), i("refer"), ge, p["speed2"])
    return {"fea_ref": fea_ref, "ge": ge, "fea_todo": fea_todo, "fea_todo_speed2": fea_todo2}


def run_dit_forward(case: Case, model_by_seed) -> dict[str, torch.Tensor]:
    dit = model_by_seed(case.seed).cfm.estimator
    i = case.input
    with torch.inference_mode():
        c = dit.condition(i("cond"), i("x_lens"), i("dt"), i("text"))
        v = dit.velocity(i("x"), i("time"), c)
    return {"v": v, "text_embed": c.text_embed, "dt_embed": c.dt_embed}


def run_cfm_sample(case: Case, model_by_seed) -> dict[str, torch.Tensor]:
    i, p = case.input, case.params
    mel = model_by_seed(case.seed).cfm.inference(
        i("mu"),
        i("x_lens"),
        i("prompt"),
        p["n_timesteps"],
        temperature=p.get("temperature", 1.0),
        inference_cfg_rate=p.get("inference_cfg_rate", 0),
        noise=i("noise").clone(),
    )
    return {"mel": mel}


def run_mel(case: Case, model_by_seed) -> dict[str, torch.Tensor]:
    del model_by_seed
    mel = mel_v4(case.input("wave"))
    c = V4_MEL
    basis = mel_filterbank(c.sampling_rate, c.n_fft, c.num_mels, c.fmin, c.fmax, torch.float32, torch.device("cpu"))
    return {"mel": mel, "mel_norm": norm_spec(mel), "mel_basis": basis}


def run_vocoder(case: Case, model_by_seed) -> dict[str, torch.Tensor]:
    del model_by_seed
    vocoder = build_vocoder()
    vocoder.load_state_dict(scheme_state_dict(key_shapes("vocoder_v4_keys"), case.seed), strict=True)
    with torch.inference_mode():
        return {"wav": vocoder(case.input("mel"))}


RUNNERS = {
    "v4_encoder": run_encoder,
    "v4_dit_forward": run_dit_forward,
    "v4_cfm_sample": run_cfm_sample,
    "v4_mel": run_mel,
    "v4_vocoder": run_vocoder,
}


def test_every_v4_case_has_a_runner() -> None:
    names = case_names("v4_")
    assert names, "no v4_* case in the fixture folder"
    assert not set(names) - set(RUNNERS), f"v4 cases without a runner: {sorted(set(names) - set(RUNNERS))}"


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in case_names("v4_") if n in RUNNERS])
def test_v4_case(name: str, model_by_seed) -> None:
    case = load_case(name)
    got = RUNNERS[name](case, model_by_seed)
    assert set(got) == set(case.output_names())
    for out, value in got.items():
        case.check(out, value)


def _meta_shapes(module_factory) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in module_factory().state_dict().items()}


def test_generator_keys_match_official() -> None:
    assert _meta_shapes(SynthesizerTrnV3) == key_shapes("s2G_v4_keys")


def test_vocoder_keys_match_official() -> None:
    assert _meta_shapes(build_vocoder) == key_shapes("vocoder_v4_keys")


def test_lora_export_keys_match_official() -> None:
    official = key_shapes("s2G_v4_lora_r32_export_keys")
    with torch.device("meta"):
        model = add_lora(SynthesizerTrnV3(), rank=32)
        state = model.state_dict()
        assert {k: tuple(state[k].shape) for k in exported_keys(model)} == official
        merge_lora(model)
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == key_shapes("s2G_v4_keys")
