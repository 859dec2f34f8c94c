"""GPT (Text2Semantic) decoding speed against the memory-bandwidth ceiling, the official op sequence and fp32.

Workload of the official CPU timing (reference gpt-sovits.md section 9): 140 phones (40 prompt + 100 target) + 125
prompt tokens, 200 generated tokens, full-size model with random weights. Decoding one token reads every weight once,
so tokens/s can never pass (mat-vec bandwidth / bytes of weights read per token): the ceiling printed for every
variant, with the bandwidth measured in the same run (an fp32 GEMV over 1 GiB). Variants, timed interleaved:
``official`` = the upstream data flow (row-major F.linear, K/V grown by torch.cat, greedy), ``fp32-eager`` (any
format) = our decoding with the Python step loop and no CUDA graphs, ``fp32`` / ``bf16`` / ``int8`` = the TorchScript
step on each weight format on a CPU (int8: FBGEMM weight-only, see mockvox.precision), the CUDA-graph step on a GPU.
``--e2e`` adds the SoVITS v2 decode of the 200 codes (8 s of audio) to each plan's GPT time: the end-to-end real-time
factor.

    python benchmarks/bench_gpt.py [--threads 2] [--tokens 200] [--repeats 3] [--variants official,fp32,int8] [--e2e]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time

import torch
import torch.nn.functional as F

from mockvox.models.t2s import Text2Semantic
from mockvox.models.t2s_decode import SamplingConfig, generate
from mockvox.precision import capabilities, describe_plan, hardware_line, plan

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


def decode(model, x, bert, prompts, tokens: int, top_k: int = 15, penalty: float = 1.35) -> tuple[torch.Tensor, float]:
    cfg = SamplingConfig(top_k=top_k, repetition_penalty=penalty, early_stop_num=tokens - 1, min_steps=tokens)
    t0 = time.perf_counter()
    res = generate(model, [x], [bert], prompts, cfg, torch.Generator(x.device).manual_seed(0))[0]
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return res.sampled, time.perf_counter() - t0


UPSTREAM_TOKENS: list[int] = []  # the greedy tokens of the last upstream-style run


@torch.inference_mode()
def upstream_style_decode(model: Text2Semantic, x, bert, prompts, tokens: int) -> float:
    """Seconds for the upstream decoding scheme on the same weights: row-major F.linear, boolean prompt mask,
    K/V caches grown by ``torch.cat`` every step (the official ``T2SBlock`` data flow), greedy, no EOS."""
    t0 = time.perf_counter()
    UPSTREAM_TOKENS.clear()
    xy = torch.cat([model.embed_text(x[None], bert[None]), model.embed_audio(prompts)], dim=1)
    nx, n = x.numel(), xy.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool, device=x.device)
    allowed[:nx, nx:] = False
    allowed[nx:, nx:] = torch.ones(n - nx, n - nx, dtype=torch.bool, device=x.device).tril()
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
        tok = F.linear(h[:, -1], model.ar_predict_layer.weight)[:, :-1].argmax(-1, keepdim=True)  # EOS blocked
        UPSTREAM_TOKENS.append(int(tok))
        h, mask = model.ar_audio_embedding(tok) + pe.alpha * pe.table(n + step)[prompts.shape[1] + step], None
    return time.perf_counter() - t0


@torch.inference_mode()
def teacher_forced_agreement(ref, model, x, bert, prompts, tokens: torch.Tensor) -> float:
    """Share of positions where ``model`` and ``ref`` have the same argmax along the fp32 greedy sequence."""
    y = torch.cat([prompts[0], tokens]).unsqueeze(0)
    lengths = torch.tensor([x.numel()], device=x.device), torch.tensor([y.shape[1]], device=x.device)
    args = (x.unsqueeze(0), lengths[0], y, lengths[1], bert.unsqueeze(0))
    a = ref.teacher_forced_logits(*args)[0].argmax(-1)
    b = model.teacher_forced_logits(*args)[0].argmax(-1)
    n = tokens.numel()
    return (a[:, -n - 1 : -1] == b[:, -n - 1 : -1]).float().mean().item()


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def matvec_bandwidth(device: str = "cpu", gib: float = 1.0, repeats: int = 5) -> float:
    """GB/s of an fp32 matrix-vector product over ``gib`` GiB of weights (more than any CPU cache): the rate at which
    decoding can read its weights."""
    rows = int(gib * 2**30 / 4 / 4096)
    w = torch.randn(rows, 4096, device=device)
    x = torch.randn(4096, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mv(w, x)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return w.numel() * 4 / best / 1e9


def weight_bytes(model: Text2Semantic) -> int:
    """Bytes of weight matrices one decoding step reads, in the format each linear holds them (packed int8: one byte
    per weight plus its scales)."""
    from mockvox.modules.packed import Int8Dynamic, Int8Pack

    total = 0
    linears = [model.ar_predict_layer]
    for layer in model.h.layers:
        a = layer.self_attn
        linears += [a.out_proj, layer.linear1, layer.linear2]
        total += _bytes(a.in_proj_weight, a.packed_in, Int8Dynamic, Int8Pack)
    return total + sum(_bytes(m.weight, m.packed, Int8Dynamic, Int8Pack) for m in linears)


def _bytes(weight: torch.Tensor, packed, *int8_kinds) -> int:
    if isinstance(packed, int8_kinds):
        return weight.numel() + 4 * weight.shape[0]
    return weight.numel() * weight.element_size()


def _variant(name: str, device: str) -> Text2Semantic | None:
    if name == "official":
        return random_model().to(device)
    base = name.removesuffix("-eager")
    if base not in DTYPES or (base == "int8" and device != "cpu"):
        raise SystemExit(f"unknown variant {name!r}; accepted: official, fp32-eager, {', '.join(DTYPES)}")
    return random_model().to(device).prepare_inference(DTYPES[base], int8_weights=base == "int8")


def _runner(name: str, model, x, bert, prompts):
    if name == "official":
        return lambda n: upstream_style_decode(model, x, bert, prompts, n)
    eager = name.endswith("-eager")

    def run(n: int) -> float:
        before = {k: os.environ.get(k) for k in ("MOCKVOX_GPT_STEP", "MOCKVOX_CUDA_GRAPHS")}
        os.environ["MOCKVOX_GPT_STEP"] = "eager" if eager else "script"
        os.environ["MOCKVOX_CUDA_GRAPHS"] = "off" if eager else "auto"
        try:
            return decode(model, x, bert, prompts, n)[1]
        finally:
            for k, v in before.items():
                os.environ.pop(k) if v is None else os.environ.update({k: v})

    return run


_NEW_LENGTHS = itertools.count(1)  # oneDNN's kernel cache is per process: every "new length" run gets its own


def sovits_decode_seconds(dtype: torch.dtype, codes: int, repeats: int, device: str = "cpu") -> tuple[float, float]:
    """Best wall times (new length, repeated length) of the SoVITS v2 decode of ``codes`` codes (as bench_sovits_v2.py:
    100 phones, 250-frame reference). A real request has a length the decoder has not seen: oneDNN builds its
    convolution kernels for it first, which in bf16 on AMX costs several times the decode itself; each "new length"
    run decodes ``codes + k`` codes (k unique in the process) and is scaled back to ``codes``."""
    from mockvox.models.sovits_v2 import SynthesizerTrn

    torch.manual_seed(0)
    model = SynthesizerTrn(use_enc_q=False).eval().to(device, dtype)
    g = torch.Generator().manual_seed(0)
    text, refer = torch.randint(1, 732, (1, 100), generator=g), torch.rand(1, 1025, 250, generator=g).to(dtype)

    def run(n: int) -> float:
        codes_n = torch.randint(0, 1024, (1, 1, n), generator=g)
        args = tuple(a.to(device) for a in (codes_n, text, refer))
        t = time.perf_counter()
        with torch.inference_mode():
            model.decode(*args, noise_scale=0.5)
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    lengths = [codes + next(_NEW_LENGTHS) for _ in range(repeats)]  # never decoded before in this process
    new = min(run(n) * codes / n for n in lengths)
    run(codes)  # warm-up of the repeated length
    return new, min(run(codes) for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default="official,fp32-eager,fp32,bf16,int8",
                    help="official, fp32-eager, fp32, bf16, fp16 (GPU), int8 (weight-only, CPU)")  # fmt: skip
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--e2e", action="store_true", help="add the SoVITS v2 decode of the codes: end-to-end RTF")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, bert, prompts = (t.to(args.device) for t in workload())
    print(f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(hardware_line(args.device))
    caps = capabilities(args.device)
    print(describe_plan("int8", plan("int8", caps), caps))
    print(f"workload: {x.numel()} phones + {prompts.shape[1]} prompt tokens -> {args.tokens} tokens")
    bandwidth = matvec_bandwidth(args.device)
    print(f"mat-vec bandwidth: {bandwidth:.1f} GB/s (fp32 GEMV over 1 GiB)")
    names = args.variants.split(",")
    models = {name: _variant(name, args.device) for name in names}
    runs = {name: _runner(name, models[name], x, bert, prompts) for name in names}
    for fn in runs.values():
        fn(8)  # warm-up
    if args.device == "cpu":
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so that load changes hit every variant alike
        for name, fn in runs.items():
            times[name].append(_timed(lambda fn=fn: fn(args.tokens)))
    if args.device == "cpu":
        print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ref = random_model().to(args.device).prepare_inference()
    greedy_ref = decode(ref, x, bert, prompts, args.tokens, top_k=1)[0]
    walls = {name: min(t[0] for t in times[name]) for name in runs}
    base = walls.get("official")
    fp32 = walls.get("fp32")
    print(f"{'variant':12s} {'tok/s':>7s} {'ms/tok':>7s} {'weights':>8s} {'ceiling':>8s} {'of ceil':>7s} "
          f"{'vs official':>11s} {'vs fp32':>7s}  agreement with fp32 (greedy / teacher-forced top-1)")  # fmt: skip
    for name in runs:
        wall, cpu = walls[name], min(t[1] for t in times[name])
        nbytes = weight_bytes(models[name]) if name != "official" else weight_bytes(ref)
        ceiling = bandwidth * 1e9 / nbytes
        rate = args.tokens / wall
        line = (
            f"{name:12s} {rate:7.1f} {wall / args.tokens * 1e3:7.2f} {nbytes / 1e6:6.0f}MB {ceiling:6.0f}/s "
            f"{rate / ceiling:7.0%} {base / wall if base else float('nan'):10.2f}x "
            f"{fp32 / wall if fp32 else float('nan'):6.2f}x  "
        )
        if name == "official":  # same weights, plain greedy (no repetition penalty) on both sides
            plain = decode(ref, x, bert, prompts, args.tokens, top_k=1, penalty=1.0)[0].tolist()
            same = sum(a == b for a, b in zip(plain, UPSTREAM_TOKENS, strict=True))
            line += f"greedy tokens vs MockVox fp32 (no penalty): {same}/{len(plain)} identical"
        else:
            greedy = decode(models[name], x, bert, prompts, args.tokens, top_k=1)[0]
            same = (greedy == greedy_ref).float().mean().item()
            prefix = int((greedy != greedy_ref).int().cumsum(0).eq(0).sum())
            tf = teacher_forced_agreement(ref, models[name], x, bert, prompts, greedy_ref)
            line += f"{same:.0%} equal (first {prefix} identical) / {tf:.1%}"
        print(line + f"  [CPU {cpu:.2f} s]", flush=True)
    if args.e2e:
        audio = args.tokens / 25
        print(f"end to end: GPT {args.tokens} tokens + SoVITS v2 decode of {audio:.0f} s of audio")
        for name in runs:
            if name == "official" or name.endswith("-eager"):
                continue
            chosen = plan(name if name in ("bf16", "int8", "fp16") else "fp32", caps)["sovits"]
            new, warm = sovits_decode_seconds(chosen, args.tokens, args.repeats, args.device)
            total = walls[name] + new
            print(f"  {name:6s} GPT {walls[name]:5.2f} s + SoVITS ({str(chosen).removeprefix('torch.')}) {new:5.2f} s "
                  f"for a new length ({warm:.2f} s repeated) = {total:5.2f} s, RTF {total / audio:.3f} "
                  f"({(walls[name] + warm) / audio:.3f} repeated)")  # fmt: skip


if __name__ == "__main__":
    main()
