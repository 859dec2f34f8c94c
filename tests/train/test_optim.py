"""ScaledAdam, learning-rate schedules and the SoVITS v2 text-low-lr parameter groups."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import nn

from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.train.optim import ScaledAdam, constant, text_low_lr_groups, text_low_lr_optimizer, warmup_cosine


def _regression(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen) + 0.5
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model, x, y


def test_fits_a_regression() -> None:
    model, x, y = _regression()
    opt = ScaledAdam(model.parameters(), lr=0.03, clipping_update_period=10)
    first = None
    for _ in range(300):
        loss = nn.functional.mse_loss(model(x), y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(nn.functional.mse_loss(model(x), y).detach()) < 0.05 * first


def test_first_update_is_relative_to_parameter_rms() -> None:
    """Step 0: delta = -lr (1 - beta1) rms(p) sign(g); scalars: -lr scalar_lr_scale (1 - beta1) sign(g)."""
    torch.manual_seed(0)
    big = nn.Parameter(torch.randn(6, 5) * 3.0)
    scalar = nn.Parameter(torch.tensor([0.7]))
    before = big.detach().clone(), scalar.detach().clone()
    big.grad, scalar.grad = torch.randn(6, 5), torch.tensor([-2.5])
    lr, (beta1, _) = 0.01, (0.9, 0.95)
    ScaledAdam([big, scalar], lr=lr).step()
    rms = before[0].pow(2).mean().sqrt()
    torch.testing.assert_close(
        big.detach() - before[0], -lr * (1 - beta1) * rms * big.grad.sign(), rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(scalar.detach() - before[1], torch.tensor([lr * 0.1 * (1 - beta1)]), rtol=0, atol=1e-7)


def _train(model, opt, x, y, steps: int, spike_at: int | None = None, spike: float = 1000.0):
    for i in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        if i == spike_at:
            for p in model.parameters():
                p.grad.mul_(spike)
        opt.step()


def test_state_dict_round_trip_continues_identically() -> None:
    model, x, y = _regression(1)
    opt = ScaledAdam(model.parameters(), lr=0.02, clipping_update_period=3)
    _train(model, opt, x, y, 11)
    clone = copy.deepcopy(model)
    restored = ScaledAdam(clone.parameters(), lr=0.02, clipping_update_period=3)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(model, opt, x, y, 5, spike_at=2)
    _train(clone, restored, x, y, 5, spike_at=2)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("spike", [1000.0, 1.0])
def test_clipping_kicks_in_on_a_gradient_spike(spike: float) -> None:
    model, x, y = _regression(2)
    clipped = ScaledAdam(model.parameters(), lr=0.01, clipping_scale=2.0, clipping_update_period=5)
    free_model = copy.deepcopy(model)
    free = ScaledAdam(free_model.parameters(), lr=0.01, clipping_scale=None)
    _train(model, clipped, x, y, 8)
    _train(free_model, free, x, y, 8)
    for a, b in zip(model.parameters(), free_model.parameters(), strict=True):  # no clipping before a full period
        torch.testing.assert_close(a, b)
    before = [p.detach().clone() for p in model.parameters()]
    _train(model, clipped, x, y, 1, spike_at=0, spike=spike)
    _train(free_model, free, x, y, 1, spike_at=0, spike=spike)
    moved_clipped = sum(float((p.detach() - b).norm()) for p, b in zip(model.parameters(), before, strict=True))
    moved_free = sum(float((p.detach() - b).norm()) for p, b in zip(free_model.parameters(), before, strict=True))
    # the second moment shows which gradient was used: clipped to ~2x the median norm, or the full spike
    v_clipped = sum(float(clipped.state[p]["exp_avg_sq"].sum()) for p in model.parameters())
    v_free = sum(float(free.state[p]["exp_avg_sq"].sum()) for p in free_model.parameters())
    if spike > 1:
        assert v_clipped < 1e-3 * v_free
        assert moved_clipped < 0.9 * moved_free
    else:
        assert v_clipped == pytest.approx(v_free, rel=1e-5)
        assert moved_clipped == pytest.approx(moved_free, rel=1e-5)


def test_warmup_cosine_follows_its_parameters() -> None:
    lr_init, peak, lr_end, warmup, total = 1e-5, 0.01, 1e-4, 10, 50
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    sched = warmup_cosine(opt, lr_init, peak, lr_end, warmup, total)
    lrs = []
    for _ in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(lr_init)
    assert lrs[5] == pytest.approx((lr_init + peak) / 2)
    assert lrs[warmup] == pytest.approx(peak)
    assert lrs[(warmup + total) // 2] == pytest.approx((peak + lr_end) / 2)
    assert lrs[warmup + 10] == pytest.approx(lr_end + 0.5 * (1 + math.cos(math.pi * 0.25)) * (peak - lr_end))
    assert all(lr == pytest.approx(lr_end) for lr in lrs[total:])
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1 : warmup + 1], strict=True))
    assert all(a > b for a, b in zip(lrs[warmup:total], lrs[warmup + 1 : total + 1], strict=True))


def test_warmup_cosine_rejects_impossible_settings() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(opt, 0.0, 0.1, 0.0, warmup_steps=10, total_steps=10)


def test_constant_keeps_each_group_lr() -> None:
    p, q = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.002}, {"params": [q], "lr": 0.5}])
    sched = constant(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.002, 0.5]


def test_text_low_lr_groups() -> None:
    g = SynthesizerTrn.tiny()
    groups = text_low_lr_groups(g, 1e-4, 0.4)
    assert [grp["lr"] for grp in groups] == pytest.approx([1e-4, 4e-5])
    low = {id(p) for m in (g.enc_p.text_embedding, g.enc_p.encoder_text, g.enc_p.mrte) for p in m.parameters()}
    assert {id(p) for p in groups[1]["params"]} == low
    base = {id(p) for p in groups[0]["params"]}
    assert not base & low
    assert base | low == {id(p) for p in g.parameters() if p.requires_grad}
    assert id(g.enc_p.encoder_ssl.attn_layers[0].conv_q.weight) in base


def test_text_low_lr_optimizer_scales_the_text_group_of_a_partial() -> None:
    g = SynthesizerTrn.tiny()
    opt = text_low_lr_optimizer(functools.partial(torch.optim.AdamW, lr=1e-4, betas=(0.8, 0.99)), g, 0.4)
    expected = text_low_lr_groups(g, 1e-4, 0.4)
    assert [grp["name"] for grp in opt.param_groups] == ["base", "text_low_lr"]
    assert [grp["lr"] for grp in opt.param_groups] == pytest.approx([1e-4, 4e-5])
    for got, want in zip(opt.param_groups, expected, strict=True):
        assert [id(p) for p in got["params"]] == [id(p) for p in want["params"]] and got["betas"] == (0.8, 0.99)


# ------------------------------------------------------------------------- schedules built from the composed config


def _lrs_at_each_step(cfg_gpt, steps: int) -> list[float]:
    """The lr each optimiser step of ``instantiate(model.gpt.optimizer)`` / ``scheduler`` runs at (one group)."""
    from hydra.utils import instantiate

    model, x, y = _regression()
    opt = instantiate(cfg_gpt.optimizer)(model.parameters())
    sched = instantiate(cfg_gpt.scheduler)(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return lrs


def _official_effective_lrs(steps: int, optimizer_lr: float = 0.01) -> list[float]:
    """GPT-SoVITS ``WarmupCosineLRSchedule`` as it runs: no initial step (the first optimiser step uses ScaledAdam's
    own lr), then every ``step()`` writes 0.002 into every group, whatever its warm-up/cosine computed."""
    return [optimizer_lr] + [0.002] * (steps - 1)


def test_the_default_gpt_schedule_is_the_official_effective_one() -> None:
    from mockvox.train.config import compose_train

    gpt = compose_train(["data.file_id=x"]).model.gpt
    assert gpt.scheduler._target_.startswith("torch.optim.lr_scheduler.")
    lrs = _lrs_at_each_step(gpt, 300)
    assert lrs == pytest.approx(_official_effective_lrs(300), rel=1e-12)
    assert lrs[:3] == pytest.approx([0.01, 0.002, 0.002])


def test_warmup_cosine_from_the_config_follows_its_parameters() -> None:
    from hydra.utils import instantiate

    from mockvox.train.config import compose_train

    gpt = compose_train(["model/gpt/scheduler=warmup_cosine", "data.file_id=x"]).model.gpt
    s = gpt.scheduler
    assert (s.lr_init, s.peak, s.lr_end, s.warmup_steps, s.total_steps) == (1e-5, 0.01, 1e-4, 2000, 40000)
    opt = instantiate(gpt.optimizer)([nn.Parameter(torch.zeros(3))])
    sched = instantiate(s)(opt)
    assert isinstance(sched, torch.optim.lr_scheduler.SequentialLR)
    lrs = []
    for _ in range(40100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()

    def expected(step: int) -> float:
        if step < 2000:
            return 1e-5 + (0.01 - 1e-5) * step / 2000
        progress = min(1.0, (step - 2000) / 38000)
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * progress)) * (0.01 - 1e-4)

    assert lrs == pytest.approx([expected(i) for i in range(40100)], rel=1e-9)
    assert lrs[0] == pytest.approx(1e-5) and lrs[2000] == pytest.approx(0.01)
    assert lrs[40000:] == pytest.approx([1e-4] * 100)
    assert _lrs_at_each_step(gpt, 5)[1:] == pytest.approx([expected(i) for i in range(1, 5)])  # with ScaledAdam


def test_warmup_cosine_needs_the_groups_at_peak() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.02)
    with pytest.raises(ValueError, match="peak"):
        warmup_cosine(opt, 1e-5, 0.01, 1e-4, 10, 50)


@pytest.mark.parametrize("choice", ["official", "warmup_cosine"])
def test_schedules_resume_from_a_weights_only_checkpoint(choice: str) -> None:
    """Lightning restores the scheduler from ``state_dict()`` (``weights_only=True``): it continues identically."""
    import io

    from hydra.utils import instantiate

    from mockvox.train.config import compose_train

    gpt = compose_train([f"model/gpt/scheduler={choice}", "model.gpt.scheduler.warmup_steps=3", "data.file_id=x"]
                        if choice == "warmup_cosine" else ["data.file_id=x"]).model.gpt  # fmt: skip

    def make():
        opt = instantiate(gpt.optimizer)([nn.Parameter(torch.zeros(3))])
        return opt, instantiate(gpt.scheduler)(opt)

    opt, sched = make()
    for _ in range(5):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2, sched2 = make()
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    for _ in range(5):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
