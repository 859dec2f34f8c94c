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


def _run_logits(case, model):
    with torch.no_grad():
        for prefix, names in (("single", ("x", "x_lens", "y", "y_lens", "bert")), ("batch", None)):
            names = names or ("batch_x", "batch_x_lens", "batch_y", "batch_y_lens", "batch_bert")
            x, x_lens, y, y_lens, bert = (case.input(n) for n in names)
            out = model.training_step_outputs(x, x_lens, y, y_lens, bert)
            case.check(f"{prefix}_logits", out.logits)
            case.check(f"{prefix}_targets", out.targets)
            case.check(f"{prefix}_loss", out.loss.reshape(1))
            case.check(f"{prefix}_acc", out.acc.reshape(1))


def _penalty_tag(rp: float) -> str:
    return "rp" + str(float(rp)).replace(".", "p")


def _run_greedy(case, model):
    p = case.params
    x, x_lens, bert, prompts = (case.input(n) for n in ("x", "x_lens", "bert", "prompts"))
    for rp in p["repetition_penalties"]:
        tag = _penalty_tag(rp)
        cfg = SamplingConfig(
            top_k=p["top_k"],
            top_p=p["top_p"],
            temperature=p["temperature"],
            repetition_penalty=rp,
            early_stop_num=p["early_stop_num"],
        )
        torch.manual_seed(p.get("torch_seed_before_call", 0))
        y, idx, logits = infer_panel(model, x, x_lens, prompts, bert, cfg, return_logits=True)
        case.check(f"ids_full_{tag}", y)
        case.check(f"new_tokens_{tag}", y[:, prompts.shape[1] :])
        case.check(f"idx_{tag}", torch.tensor([idx]))
        n = case.expected(f"logits_first3_{tag}").shape[0]
        case.check(f"logits_first3_{tag}", torch.cat(logits[:n], dim=0))
        torch.manual_seed(p.get("torch_seed_before_call", 0))
        ys, idxs = infer_panel_batch(model, [x[0]], x_lens, prompts, [bert[0]], cfg)
        case.check(f"ids_batch_infer_{tag}", ys[0].unsqueeze(0))
        case.check(f"idx_batch_infer_{tag}", torch.tensor([idxs[0]]))


RUNNERS = {"t2s_logits": _run_logits, "t2s_greedy": _run_greedy}


@pytest.mark.parametrize("name", case_names("t2s_"))
def test_golden_case(name):
    case = load_case(name)
    runner = RUNNERS.get(name)
    assert runner is not None, f"no runner for GPT case {name}"
    runner(case, scheme_model(case.seed))
