"""The GPT (Text2Semantic) equals the official one: state-dict layout and every ``t2s_*`` golden case."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from mockvox.models.t2s import Text2Semantic
from mockvox.models.t2s_decode import SamplingConfig, infer_panel, infer_panel_batch
from tests.conformance.fixtures import case_names, fixtures_dir, key_shapes, load_case, scheme_state_dict

pytestmark = pytest.mark.skipif(not (fixtures_dir() / "keys").is_dir(), reason="no GPT-SoVITS fixture folder")


@cache
def scheme_model(seed: int) -> Text2Semantic:
    model = Text2Semantic().eval()
    model.load_official_state_dict(scheme_state_dict(key_shapes("t2s_v2_keys"), seed), strict=True)
    return model.prepare_inference()  # the production decoding layout


def test_state_dict_keys_and_shapes_match_official_both_ways():
    official = key_shapes("t2s_v2_keys")
    ours = {k: tuple(v.shape) for k, v in Text2Semantic().official_state_dict().items()}
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {k: ours[k] for k in official} == official


def _run_logits(case, model) -> dict[str, torch.Tensor]:
    got = {}
    with torch.no_grad():
        for prefix, stem in (("single", ""), ("batch", "batch_")):
            x, x_lens, y, y_lens, bert = (case.input(stem + n) for n in ("x", "x_lens", "y", "y_lens", "bert"))
            out = model.training_step_outputs(x, x_lens, y, y_lens, bert)
            got |= {f"{prefix}_logits": out.logits, f"{prefix}_targets": out.targets}
            got |= {f"{prefix}_loss": out.loss.reshape(1), f"{prefix}_acc": out.acc.reshape(1)}
    return got


def _penalty_tag(rp: float) -> str:
    return "rp" + str(float(rp)).replace(".", "p")


def _run_greedy(case, model) -> dict[str, torch.Tensor]:
    p, got = case.params, {}
    x, x_lens, bert, prompts = (case.input(n) for n in ("x", "x_lens", "bert", "prompts"))
    n_logits = max((case.expected(k).shape[0] for k in case.output_names() if k.startswith("logits_first")), default=0)
    for rp in p.get("repetition_penalties") or [p["repetition_penalty"]]:
        tag = _penalty_tag(rp)
        cfg = SamplingConfig(
            top_k=p["top_k"],
            top_p=p.get("top_p", 1.0),
            temperature=p.get("temperature", 1.0),
            repetition_penalty=rp,
            early_stop_num=p.get("early_stop_num", -1),
        )
        torch.manual_seed(p.get("torch_seed_before_call", 0))
        y, idx, logits = infer_panel(model, x, x_lens, prompts, bert, cfg, return_logits=True)
        got |= {f"ids_full_{tag}": y, f"new_tokens_{tag}": y[:, prompts.shape[1] :], f"idx_{tag}": torch.tensor([idx])}
        got[f"logits_first{n_logits}_{tag}"] = torch.cat(logits[:n_logits], dim=0)
        torch.manual_seed(p.get("torch_seed_before_call", 0))
        ys, idxs = infer_panel_batch(model, [x[0]], x_lens, prompts, [bert[0]], cfg)
        got |= {f"ids_batch_infer_{tag}": ys[0].unsqueeze(0), f"idx_batch_infer_{tag}": torch.tensor([idxs[0]])}
    return got


RUNNERS = {"t2s_logits": _run_logits, "t2s_greedy": _run_greedy}


@pytest.mark.parametrize("name", case_names("t2s_"))
def test_golden_case(name):
    case = load_case(name)
    runner = next((run for prefix, run in RUNNERS.items() if name.startswith(prefix)), None)
    assert runner is not None, f"no runner for GPT case {name}"
    got = runner(case, scheme_model(case.seed))
    missing = [k for k in case.output_names() if k not in got]
    assert not missing, f"{name}: outputs not computed: {missing}"
    for key in case.output_names():
        case.check(key, got[key])
