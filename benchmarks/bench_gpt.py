"""GPT (Text2Semantic) decoding speed: tok/s in fp32 and reduced precision, plus greedy agreement with fp32.

Workload of the official CPU timing (reference gpt-sovits.md §9): 140 phones (40 prompt + 100 target) + 125 prompt
tokens, 200 generated tokens, full-size model with random weights (official upstream: 4.3 s = 46 tok/s, 2 threads).

    python benchmarks/bench_gpt.py [--threads 2] [--tokens 200] [--repeats 3] [--dtypes fp32,bf16] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

from mockvox.models.t2s import Text2Semantic
from mockvox.models.t2s_decode import SamplingConfig, generate
from mockvox.precision import hardware_line

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


def random_model(seed: int = 0) -> Text2Semantic:
    """Full-size model with non-degenerate random weights (transformer matrices scaled 0.4/sqrt(fan_in))."""
    model = Text2Semantic().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            x = torch.randn(p.shape, generator=g)
            if name.endswith("embeddings.weight"):
                p.copy_(x)
            elif p.ndim >= 2:
                gain = 0.4 if name.startswith("h.layers.") else 1.0
                p.copy_(x * gain / math.sqrt(p[0].numel()))
            elif name.endswith("bias"):
                p.copy_(0.1 * x)
            else:
                p.copy_(1 + 0.1 * x)
    return model


def workload(seed: int = 1, phones: int = 140, prompt_phones: int = 40, prompt_tokens: int = 125):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 732, (phones,), generator=g)
    bert = torch.randn(1024, phones, generator=g)
    bert[:, :prompt_phones] = 0
    prompts = torch.randint(0, 1024, (1, prompt_tokens), generator=g)
    return x, bert, prompts


def decode(model, x, bert, prompts, tokens: int, top_k: int = 15) -> tuple[torch.Tensor, float]:
    cfg = SamplingConfig(top_k=top_k, early_stop_num=tokens - 1, min_steps=tokens)  # exactly `tokens` steps
    t0 = time.perf_counter()
    res = generate(model, [x], [bert], prompts, cfg, torch.Generator().manual_seed(0))[0]
    return res.sampled, time.perf_counter() - t0


@torch.inference_mode()
def upstream_style_decode(model: Text2Semantic, x, bert, prompts, tokens: int) -> float:
    """Seconds for the upstream decoding scheme on the same weights: row-major F.linear, boolean prompt mask,
    K/V caches grown by ``torch.cat`` every step (the official ``T2SBlock`` data flow), greedy, no EOS."""
    t0 = time.perf_counter()
    xy = torch.cat([model.embed_text(x[None], bert[None]), model.embed_audio(prompts)], dim=1)
    nx, n = x.numel(), xy.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool)
    allowed[:nx, nx:] = False
    allowed[nx:, nx:] = torch.ones(n - nx, n - nx, dtype=torch.bool).tril()
    caches, h, mask = [], xy, allowed[None, None]
    pe = model.ar_audio_position
    for step in range(tokens):
        for i, layer in enumerate(model.h.layers):
            attn = layer.self_attn
            q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            if step:
                k, v = torch.cat([caches[i][0], k], 1), torch.cat([caches[i][1], v], 1)
                caches[i] = (k, v)
            else:
                caches.append((k, v))
            heads = [t.view(1, t.shape[1], attn.heads, -1).transpose(1, 2) for t in (q, k, v)]
            o = F.scaled_dot_product_attention(*heads, attn_mask=mask).transpose(1, 2).reshape(h.shape)
            h = layer.norm1(h + F.linear(o, attn.out_proj.weight, attn.out_proj.bias))
            ff = F.linear(F.relu(F.linear(h, layer.linear1.weight, layer.linear1.bias)), layer.linear2.weight)
            h = layer.norm2(h + ff + layer.linear2.bias)
        tok = F.linear(h[:, -1], model.ar_predict_layer.weight).argmax(-1, keepdim=True)
        h, mask = model.ar_audio_embedding(tok) + pe.alpha * pe.table(n + step)[prompts.shape[1] + step], None
    return time.perf_counter() - t0


@torch.inference_mode()
def teacher_forced_agreement(ref, model, x, bert, prompts, tokens: torch.Tensor) -> float:
    """Share of positions where ``model`` and ``ref`` have the same argmax along the fp32 greedy sequence."""
    y = torch.cat([prompts[0], tokens]).unsqueeze(0)
    args = (x.unsqueeze(0), torch.tensor([x.numel()]), y, torch.tensor([y.shape[1]]), bert.unsqueeze(0))
    a = ref.teacher_forced_logits(*args)[0].argmax(-1)
    b = model.teacher_forced_logits(*args)[0].argmax(-1)
    n = tokens.numel()
    return (a[:, -n - 1 : -1] == b[:, -n - 1 : -1]).float().mean().item()


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtypes", default="fp32,bf16,int8", help="fp32, bf16, fp16 (GPU), int8 (weight-only, CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-baseline", action="store_true", help="skip the upstream-style decoding loop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, bert, prompts = (t.to(args.device) for t in workload())
    print(f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(hardware_line(args.device))
    print(f"workload: {x.numel()} phones + {prompts.shape[1]} prompt tokens -> {args.tokens} tokens")
    runs = {}  # name -> (model, callable); repeats are interleaved so that load changes hit every variant alike
    if not args.no_baseline:
        base = random_model().to(args.device)
        runs["upstream-style fp32"] = (base, lambda n, m=base: upstream_style_decode(m, x, bert, prompts, n))
    for name in args.dtypes.split(","):
        model = random_model().to(args.device).prepare_inference(DTYPES[name], int8_weights=name == "int8")
        runs[name] = (model, lambda n, m=model: decode(m, x, bert, prompts, n))
    for _, fn in runs.values():
        fn(8)  # warm-up
    if args.device == "cpu":
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (_, fn) in runs.items():
            times[name].append(_timed(lambda fn=fn: fn(args.tokens)))
    if args.device == "cpu":
        print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ref = random_model().to(args.device).prepare_inference()
    greedy_ref = decode(ref, x, bert, prompts, args.tokens, top_k=1)[0]
    for name, (model, _) in runs.items():
        wall = min(t[0] for t in times[name])
        cpu = min(t[1] for t in times[name])
        line = f"{name:20s} {args.tokens / wall:6.1f} tok/s (best of {args.repeats}: {wall:5.2f} s, CPU {cpu:5.2f} s)"
        if name not in ("fp32", "upstream-style fp32"):
            greedy = decode(model, x, bert, prompts, args.tokens, top_k=1)[0]
            same = (greedy == greedy_ref).float().mean().item()
            prefix = int((greedy != greedy_ref).int().cumsum(0).eq(0).sum())
            tf = teacher_forced_agreement(ref, model, x, bert, prompts, greedy_ref)
            line += f"  greedy vs fp32: {same:.0%} equal, first {prefix} identical, teacher-forced top-1 {tf:.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
