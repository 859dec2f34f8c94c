"""SoVITS v4 equals the official networks: key lists and every discovered ``v4_*`` golden case."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mockvox.modules.cfm import CFM
from mockvox.modules.dit import DiT
from tests.conformance.fixtures import Case, case_names, fixtures_dir, key_shapes, load_case, scheme_state_dict

pytestmark = pytest.mark.skipif(not fixtures_dir().is_dir(), reason="no GPT-SoVITS fixture folder")

CFM_PREFIX = "cfm."


@pytest.fixture(scope="module")
def v4_shapes() -> dict[str, tuple[int, ...]]:
    return key_shapes("s2G_v4_keys")


@pytest.fixture(scope="module")
def cfm_by_seed(v4_shapes) -> Callable[[int], CFM]:
    """The full-size CFM (DiT 1024 x 22) filled with the scheme, built once per seed."""
    built: dict[int, CFM] = {}

    def get(seed: int) -> CFM:
        if seed not in built:
            built.clear()  # one 1.3 GB model at a time
            shapes = {k: s for k, s in v4_shapes.items() if k.startswith(CFM_PREFIX)}
            sd = {k[len(CFM_PREFIX) :]: v for k, v in scheme_state_dict(shapes, seed).items()}
            model = CFM(100, DiT())
            model.load_state_dict(sd, strict=True)
            built[seed] = model.eval()
        return built[seed]

    return get


def run_dit_forward(case: Case, cfm_by_seed) -> dict[str, torch.Tensor]:
    dit = cfm_by_seed(case.seed).estimator
    i = case.input
    with torch.inference_mode():
        c = dit.condition(i("cond"), i("x_lens"), i("dt"), i("text"))
        v = dit.velocity(i("x"), i("time"), c)
    return {"v": v, "text_embed": c.text_embed, "dt_embed": c.dt_embed}


def run_cfm_sample(case: Case, cfm_by_seed) -> dict[str, torch.Tensor]:
    i, p = case.input, case.params
    mel = cfm_by_seed(case.seed).inference(
        i("mu"),
        i("x_lens"),
        i("prompt"),
        p["n_timesteps"],
        temperature=p.get("temperature", 1.0),
        inference_cfg_rate=p.get("inference_cfg_rate", 0),
        noise=i("noise").clone(),
    )
    return {"mel": mel}


RUNNERS = {"v4_dit_forward": run_dit_forward, "v4_cfm_sample": run_cfm_sample}


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in case_names("v4_") if n in RUNNERS])
def test_v4_case(name: str, cfm_by_seed) -> None:
    case = load_case(name)
    got = RUNNERS[name](case, cfm_by_seed)
    assert set(got) == set(case.output_names())
    for out, value in got.items():
        case.check(out, value)


def test_dit_keys_match_official(v4_shapes) -> None:
    official = {k[len(CFM_PREFIX) :]: s for k, s in v4_shapes.items() if k.startswith(CFM_PREFIX)}
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in CFM(100, DiT()).state_dict().items()}
    assert ours == official
