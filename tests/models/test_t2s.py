"""Tiny Text2Semantic: objective, KV-cache decoding, batching, sampling rules, inference layouts."""

from __future__ import annotations

import pytest
import torch

from mockvox.models.t2s import T2SConfig, Text2Semantic, make_rejected, topk_accuracy
from mockvox.models.t2s_decode import SamplingConfig, generate, infer_panel, sample_next


@pytest.fixture(scope="module")
def model() -> Text2Semantic:
    torch.manual_seed(0)
    m = Text2Semantic.tiny().eval()
    with torch.no_grad():  # larger, non-degenerate random weights so that decisions vary
        for name, p in m.named_parameters():
            if p.ndim >= 2:
                p.normal_(0, 1.0 if "embeddings" in name else 0.6 / p.shape[1] ** 0.5)
    return m


def _text(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 732, (n,), generator=g), torch.randn(1024, n, generator=g)


def test_tiny_preset_exercises_every_block(model):
    cfg = model.config
    assert cfg == T2SConfig.tiny() and len(model.h.layers) == cfg.num_layers >= 2
    keys = set(model.official_state_dict())
    for part in ("bert_proj", "ar_text_embedding", "ar_text_position", "ar_audio_embedding", "ar_audio_position"):
        assert any(k.startswith(f"model.{part}.") for k in keys)
    assert T2SConfig.from_official(model.official_config()) == cfg


def test_training_objective_shapes_targets_and_gradients():
    torch.manual_seed(1)
    m = Text2Semantic.tiny().train()
    x = torch.randint(0, 732, (2, 7))
    y = torch.randint(0, 1024, (2, 9))
    y[1, 6:] = 1024  # collate pads semantic ids with EOS
    x_lens, y_lens = torch.tensor([7, 5]), torch.tensor([9, 6])
    out = m.training_step_outputs(x, x_lens, y, y_lens, torch.randn(2, 1024, 7))
    assert out.logits.shape == (2, 10, 1025) and out.targets.shape == (2, 10)
    assert out.targets[0, :9].equal(y[0]) and out.targets[0, 9] == 1024
    assert out.targets[1, :6].equal(y[1, :6]) and (out.targets[1, 6:] == 1024).all()
    out.loss.backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in m.parameters() if p.requires_grad)
    assert 0.0 <= out.acc.item() <= 1.0


def test_dpo_objective_adds_a_finite_preference_term():
    torch.manual_seed(2)
    m = Text2Semantic.tiny().eval()
    args = (torch.randint(0, 732, (1, 6)), torch.tensor([6]), torch.randint(0, 1024, (1, 8)), torch.tensor([8]))
    bert = torch.randn(1, 1024, 6)
    plain = m.training_step_outputs(*args, bert).loss
    dpo = m.dpo_step_outputs(*args, bert, generator=torch.Generator().manual_seed(0)).loss
    assert dpo.isfinite() and dpo > plain


def test_make_rejected_repeats_a_span_of_real_tokens():
    y = torch.tensor([[1, 2, 3, 4, 1024, 1024]])
    rej, lens = make_rejected(y, torch.tensor([4]), torch.Generator().manual_seed(3))
    assert lens.item() >= 4 and 1024 not in rej[0, : lens.item()].tolist()


def test_topk_accuracy_ignores_eos_targets():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = logits[0, 1, 4] = 1
    targets = torch.tensor([[2, 1, 4]])
    assert topk_accuracy(logits, targets, k=1, ignore_index=4).item() == 0.5


@torch.no_grad()
def test_cached_decoding_matches_full_recompute(model):
    x, bert = _text(9, 4)
    prompts = torch.randint(0, 1024, (1, 5))
    cfg = SamplingConfig(top_k=1, early_stop_num=7, min_steps=100)
    y, idx, logits = infer_panel(model, x[None], torch.tensor([9]), prompts, bert[None], cfg, return_logits=True)
    assert y.shape == (1, 5 + 8) and idx == 7
    full, _ = model.teacher_forced_logits(x[None], torch.tensor([9]), y, torch.tensor([y.shape[1]]), bert[None])
    for step, step_logits in enumerate(logits):  # position P-1+step of the audio stream predicts token `step`
        torch.testing.assert_close(step_logits[0], full[0, 5 + step], atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_batched_generation_equals_single_items(model):
    texts = [_text(n, 10 + n) for n in (6, 11, 8)]
    prompts = torch.randint(0, 1024, (3, 4), generator=torch.Generator().manual_seed(5))
    cfg = SamplingConfig(top_k=1, repetition_penalty=1.35, early_stop_num=20)
    batch = generate(model, [t[0] for t in texts], [t[1] for t in texts], prompts, cfg)
    for i, (x, bert) in enumerate(texts):
        single = generate(model, [x], [bert], prompts[i : i + 1], cfg)[0]
        assert batch[i].sampled.equal(single.sampled) and batch[i].last_step == single.last_step


@torch.no_grad()
def test_seeded_sampling_is_reproducible(model):
    x, bert = _text(8, 6)
    prompts = torch.randint(0, 1024, (1, 4))
    cfg = SamplingConfig(top_k=50, temperature=1.2, early_stop_num=15)

    def run(seed):
        return generate(model, [x], [bert], prompts, cfg, torch.Generator().manual_seed(seed))[0].sampled

    assert run(1).equal(run(1))
    assert not run(1).equal(run(2))


def test_sampling_rules():
    logits = torch.tensor([[2.0, -1.0, 1.5, 0.5]])
    prev = torch.tensor([[0, 1]])
    cfg = SamplingConfig(top_k=1, repetition_penalty=2.0)
    tok, pen = sample_next(logits, prev, cfg)
    assert pen.tolist() == [[1.0, -2.0, 1.5, 0.5]] and tok.item() == 2  # penalty applies before top-k
    nucleus = SamplingConfig(top_k=None, top_p=0.01, repetition_penalty=1.0)
    assert all(sample_next(logits, prev, nucleus)[0].item() == 0 for _ in range(5))  # always keeps the top token


@torch.no_grad()
def test_eos_is_blocked_for_the_first_steps(model):
    m = Text2Semantic.tiny().eval()
    with torch.no_grad():
        m.ar_predict_layer.weight.zero_()
        m.ar_predict_layer.weight[1024] = 1.0  # EOS dominates every step once allowed
        m.h.layers[-1].norm2.bias.fill_(1.0)
    x, bert = _text(5, 7)
    res = generate(m, [x], [bert], torch.randint(0, 1024, (1, 3)), SamplingConfig(top_k=1, min_steps=4))[0]
    assert res.stopped_by_eos and res.last_step == 4 and res.tokens.numel() == 4


@torch.no_grad()
def test_inference_layouts_keep_results(model):
    x, bert = _text(10, 8)
    prompts = torch.randint(0, 1024, (1, 6), generator=torch.Generator().manual_seed(8))
    cfg = SamplingConfig(top_k=1, early_stop_num=10)

    def run(m):
        y, _, logits = infer_panel(m, x[None], torch.tensor([10]), prompts, bert[None], cfg, return_logits=True)
        return y, logits[0][0].float()

    ref, ref_logits = run(model)
    fast = Text2Semantic.tiny()
    fast.load_state_dict(model.state_dict())
    assert run(fast.prepare_inference())[0].equal(ref)  # fp32 column-major: same decisions
    for kwargs in ({"int8_weights": True}, {"dtype": torch.bfloat16}):  # reduced precision: close first-step logits
        y, logits = run(fast.prepare_inference(**kwargs))
        assert fast.ar_predict_layer.weight.dtype == kwargs.get("dtype", torch.float32) and y.shape[0] == 1
        assert (logits - ref_logits).abs().max() < 0.05 * ref_logits.abs().max()
    fast.train()
    assert fast.ar_predict_layer.packed is None


def test_training_after_long_decoding_reuses_the_grown_position_table():
    m = Text2Semantic.tiny().eval()
    x, bert = _text(5, 9)
    cfg = SamplingConfig(top_k=1, early_stop_num=30, min_steps=100)
    m.ar_audio_position.pe = m.ar_audio_position.pe[:16]  # force the table to grow inside inference mode
    generate(m, [x], [bert], torch.randint(0, 1024, (1, 3)), cfg)
    m.train()
    y = torch.randint(0, 1024, (1, 40))
    out = m.training_step_outputs(x[None], torch.tensor([5]), y, torch.tensor([40]), bert[None])
    out.loss.backward()
    assert m.ar_audio_position.alpha.grad is not None


@pytest.mark.parametrize("int8", [False, True])
def test_scripted_step_equals_the_python_loop(model, monkeypatch, int8):
    """The TorchScript decoding step (default) and the Python loop (``MOCKVOX_GPT_STEP=eager``) draw the same tokens,
    for one text and for a left-padded batch (masked keys), in fp32 and with int8 weights."""
    from mockvox.modules.ar_transformer import scripted_step

    fast = Text2Semantic.tiny()
    fast.load_state_dict(model.state_dict())
    fast.prepare_inference(int8_weights=int8)
    texts = [_text(n, 20 + n) for n in (9, 5, 12)]
    prompts = torch.randint(0, 1024, (3, 4), generator=torch.Generator().manual_seed(2))
    cfg = SamplingConfig(top_k=5, early_stop_num=25)

    def run(items, p):
        g = torch.Generator().manual_seed(11)
        return generate(fast, [t[0] for t in items], [t[1] for t in items], p, cfg, g, keep_logits=3)

    scripted = (run(texts[:1], prompts[:1]), run(texts, prompts))
    assert scripted_step() is not None and fast.h._script_args is not None  # the scripted path ran
    monkeypatch.setenv("MOCKVOX_GPT_STEP", "eager")
    assert scripted_step() is None
    eager = (run(texts[:1], prompts[:1]), run(texts, prompts))
    for got, want in zip(scripted, eager, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a.sampled.equal(b.sampled) and a.last_step == b.last_step
            assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a.logits, b.logits, strict=True))


def _static_case(model):
    fast = Text2Semantic.tiny()
    fast.load_state_dict(model.state_dict())
    fast.prepare_inference()
    x, bert = _text(11, 31)
    prompts = torch.randint(0, 1024, (1, 7), generator=torch.Generator().manual_seed(4))
    return fast, x, bert, prompts


def test_static_step_draws_the_tokens_of_the_dynamic_step(model):
    """The fixed-shape step (bucketed attention over a fixed cache, position as a device tensor: what CUDA graphs
    replay on a GPU) runs eagerly on the CPU and must decide like the dynamic step."""
    from mockvox.models import t2s_graph

    fast, x, bert, prompts = _static_case(model)
    cfg = SamplingConfig(top_k=5, early_stop_num=150)  # past one attention bucket (128 positions)
    runs = {}
    for static in (False, True):
        g = torch.Generator().manual_seed(5)
        runs[static] = generate(fast, [x], [bert], prompts, cfg, g, keep_logits=200, static=static)[0]
    assert runs[True].sampled.equal(runs[False].sampled) and runs[True].last_step == runs[False].last_step
    assert len(runs[True].logits) == 151
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(runs[True].logits, runs[False].logits, strict=True))
    runner = t2s_graph.static_runner(fast.h, fast.ar_predict_layer.weight[:1, :1])
    assert runner.cache.length == 18 + 150 and not runner.use_graphs  # it ran; no graphs off CUDA
    fast.prepare_inference()  # new weights or layouts drop the runner (its graphs would hold stale addresses)
    assert t2s_graph.static_runner(fast.h, fast.ar_predict_layer.weight[:1, :1]) is not runner


def test_static_step_falls_back_when_busy_or_too_long(model):
    from mockvox.models import t2s_graph

    fast, x, bert, prompts = _static_case(model)
    cfg = SamplingConfig(top_k=1, early_stop_num=5)
    want = generate(fast, [x], [bert], prompts, cfg, static=False)[0].sampled
    runner = t2s_graph.static_runner(fast.h, fast.ar_predict_layer.weight[:1, :1])
    assert runner.claim() is not None  # another request holds the static cache
    try:
        assert generate(fast, [x], [bert], prompts, cfg, static=True)[0].sampled.equal(want)
        assert runner.cache.length == 0  # untouched: the dynamic step ran
    finally:
        runner.release()
    long_cfg = SamplingConfig(top_k=1, early_stop_num=5, max_steps=t2s_graph.CAPACITY)
    assert generate(fast, [x], [bert], prompts, long_cfg, static=True)[0].sampled.equal(want)
    assert runner.cache.length == 0 and runner.claim() is not None  # too long for it: dynamic, and released
    runner.release()


@pytest.mark.gpu
def test_cuda_graph_step_draws_the_tokens_of_the_dynamic_step(model):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from mockvox.models import t2s_graph

    fast, x, bert, prompts = _static_case(model)
    fast.cuda().prepare_inference()
    x, bert, prompts = x.cuda(), bert.cuda(), prompts.cuda()
    cfg = SamplingConfig(top_k=5, early_stop_num=150)
    runs = {}
    for static in (False, True):
        g = torch.Generator("cuda").manual_seed(5)
        runs[static] = generate(fast, [x], [bert], prompts, cfg, g, static=static)[0]
    assert runs[True].sampled.equal(runs[False].sampled)
    runner = t2s_graph.static_runner(fast.h, fast.ar_predict_layer.weight[:1, :1])
    assert runner.use_graphs and sorted(runner.graphs) == [128, 256]


def test_failed_graph_capture_falls_back_to_the_eager_static_step(model, monkeypatch, caplog):
    import logging

    from mockvox.models import t2s_graph

    fast, x, bert, prompts = _static_case(model)
    cfg = SamplingConfig(top_k=5, early_stop_num=20)
    want = generate(fast, [x], [bert], prompts, cfg, torch.Generator().manual_seed(5), static=False)[0].sampled
    runner = t2s_graph.static_runner(fast.h, fast.ar_predict_layer.weight[:1, :1])
    runner.use_graphs = True  # as on a GPU: here the capture itself fails (no CUDA)
    with caplog.at_level(logging.WARNING, logger="mockvox.models.t2s_graph"):
        got = generate(fast, [x], [bert], prompts, cfg, torch.Generator().manual_seed(5), static=True)[0].sampled
    assert got.equal(want) and not runner.use_graphs and not runner.graphs
    assert any("CUDA graph capture failed" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("MOCKVOX_CUDA_GRAPHS", "off")
    assert not t2s_graph.graphs_enabled()
