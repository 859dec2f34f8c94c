"""SoVITS v4 inference speed on the official CPU workload (GPT-SoVITS reference timings, ../shared §9).

Workload: 5 s reference (125 codes -> 500 prompt frames) and 8 s target (200 codes -> 800 frames): the sequential
chunking makes two CFM calls (1000 and 800 frames); the vocoder turns 800 frames into 8 s at 48 kHz. Weights are
random (full size); speed does not depend on their values. Official on a 2-core CPU (fp32): decode_encp 0.37 s,
CFM 8 steps 44.0 s (3.3 s per step at 1000 frames), 32 steps 169.8 s, vocoder 1.83 s.

    python benchmarks/bench_v4.py                       # fp32 + bf16, 8 and 32 steps
    python benchmarks/bench_v4.py --steps 8 --precision fp32 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from mockvox.models.sovits_v4 import ChunkConfig, SynthesizerTrnV3, align_prompt, generate_sequential
from mockvox.models.vocoder_v4 import build_vocoder
from mockvox.precision import hardware_line

OFFICIAL = {"decode_encp_s": 0.37, "cfm_step_1000_s": 3.3, "cfm_8_steps_s": 44.0, "cfm_32_steps_s": 169.8}
OFFICIAL["vocoder_s"] = 1.83
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@torch.no_grad()
def realistic_init(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights with the statistics of the golden-fixture scheme (matrices ~ N(0, 1/fan_in), biases ~ 0.1 N(0, 1),
    norm gains ~ 1): PyTorch's default init of the vocoder drives activations into denormals, which slows x86
    CPUs by several times and would not happen with trained weights."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        x = torch.randn(p.shape, generator=gen)
        if p.dim() >= 2:
            p.copy_(x / p[0].numel() ** 0.5)
        elif name.endswith(("weight", "gamma", "weight_g")):
            p.copy_(1 + 0.1 * x)
        else:
            p.copy_(0.1 * x)
    return module


class Clock:
    """Wall time and process CPU time / threads. On a CPU shared with other jobs the wall time is inflated; the CPU
    time divided by the thread count is what the same work takes on an idle machine (both threads busy)."""

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = (time.process_time() - self.cpu) / self.threads


def best_of(fn, repeats: int) -> tuple[float, float]:
    """Minimum (wall, CPU/threads) seconds over ``repeats`` calls, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        with Clock(torch.get_num_threads()) as c:
            fn()
        walls.append(c.wall)
        cpus.append(c.cpu)
    return min(walls), min(cpus)


def official_style_velocity(dit, x: torch.Tensor, time_: torch.Tensor, c, mask: torch.Tensor) -> torch.Tensor:
    """The same DiT step with the official op sequence (baseline for an interleaved A/B on this machine): unfused
    F.linear + GELU, LayerNorm then separate scale/shift, RoPE by concatenating full projections, an expanded boolean
    [B, H, T, T] key mask on every call, input projection over the full concatenation at every step."""
    F = torch.nn.functional
    b, t = x.shape[0], x.shape[2]
    temb = dit.time_embed(time_) + c.dt_embed
    cond = torch.zeros(b, t, dit.mel_dim, dtype=x.dtype)
    h = F.linear(torch.cat([x.transpose(1, 2), cond, c.text_embed], -1), dit.input_embed.proj.weight,
                 dit.input_embed.proj.bias)  # fmt: skip
    h = dit.input_embed.conv_pos_embed(h) + h
    cos, sin = c.rope
    for blk in dit.transformer_blocks:
        a = blk.attn
        sh, sc, g, sh2, sc2, g2 = F.linear(F.silu(temb), blk.attn_norm.linear.weight, blk.attn_norm.linear.bias).chunk(
            6, 1
        )
        n = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + sc[:, None]) + sh[:, None]
        q, k, v = (F.linear(n, lin.weight, lin.bias) for lin in (a.to_q, a.to_k, a.to_v))
        q, k = (torch.cat([z[..., :64] * cos + _pairs(z[..., :64]) * sin, z[..., 64:]], -1) for z in (q, k))
        q, k, v = (z.view(b, t, a.heads, a.dim_head).transpose(1, 2) for z in (q, k, v))
        m = mask[:, None, None, :].expand(b, a.heads, t, t)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=m).transpose(1, 2).reshape(b, t, -1)
        o = F.linear(o, a.to_out[0].weight, a.to_out[0].bias).masked_fill(~mask[..., None], 0.0)
        h = h + g[:, None] * o
        n = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + sc2[:, None]) + sh2[:, None]
        ff = blk.ff.ff
        f = F.gelu(F.linear(n, ff[0][0].weight, ff[0][0].bias), approximate="tanh")
        h = h + g2[:, None] * F.linear(f, ff[2].weight, ff[2].bias)
    sc, sh = F.linear(F.silu(temb), dit.norm_out.linear.weight, dit.norm_out.linear.bias).chunk(2, 1)
    h = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + sc[:, None]) + sh[:, None]
    return F.linear(h, dit.proj_out.weight, dit.proj_out.bias)


def _pairs(z: torch.Tensor) -> torch.Tensor:
    p = z.unflatten(-1, (-1, 2))
    return torch.stack((-p[..., 1], p[..., 0]), -1).flatten(-2)


def ab_step(dit, repeats: int, t: int = 1000) -> dict[str, tuple]:
    """Interleaved A/B of one fp32 step at ``t`` frames: ours vs the official op sequence, same weights and inputs."""
    x, text = torch.randn(1, 100, t), torch.randn(1, 512, t)
    with torch.inference_mode():
        c = dit.condition(torch.zeros(1, 100, t), torch.tensor([t]), torch.full((1,), 1 / 8), text)
        mask = torch.ones(1, t, dtype=torch.bool)
        ours = dit.velocity(x, torch.zeros(1), c)
        ref = official_style_velocity(dit, x, torch.zeros(1), c, mask)
        rel = ((ours - ref).abs().max() / ref.abs().max()).item()
        runs = {"ours": lambda: dit.velocity(x, torch.zeros(1), c)}
        runs["official_style"] = lambda: official_style_velocity(dit, x, torch.zeros(1), c, mask)
        times: dict[str, list] = {k: [] for k in runs}
        for _ in range(repeats):
            for name, fn in runs.items():
                with Clock(torch.get_num_threads()) as clock:
                    fn()
                times[name].append((clock.wall, clock.cpu))
    out = {k: (min(w for w, _ in v), min(c_ for _, c_ in v)) for k, v in times.items()}
    out["max_rel_diff"] = (rel, rel)
    return out


def official_style_vocoder(voc, mel: torch.Tensor) -> torch.Tensor:
    """The vocoder with the official op sequence (plain [B, C, T] Conv1d / ConvTranspose1d calls, out of place)."""
    F = torch.nn.functional
    x = voc.conv_pre(mel)
    for i, up in enumerate(voc.ups):
        x = up(F.leaky_relu(x, 0.1))
        xs = None
        for block in voc.resblocks[i * voc.num_kernels : (i + 1) * voc.num_kernels]:
            y = x
            for c1, c2 in zip(block.convs1, block.convs2, strict=True):
                y = c2(F.leaky_relu(c1(F.leaky_relu(y, 0.1)), 0.1)) + y
            xs = y if xs is None else xs + y
        x = xs / voc.num_kernels
    return torch.tanh(voc.conv_post(F.leaky_relu(x)))


def ab_vocoder(frames: int, repeats: int) -> dict[str, tuple]:
    """Interleaved A/B of the fp32 vocoder: ours vs the official op sequence, same weights and input."""
    voc = realistic_init(build_vocoder())
    mel = torch.rand(1, 100, frames) * 10 - 10
    runs = {"ours": lambda: voc(mel), "official_style": lambda: official_style_vocoder(voc, mel)}
    times: dict[str, list] = {k: [] for k in runs}
    with torch.inference_mode():
        rel = ((runs["ours"]() - runs["official_style"]()).abs().max()).item()
        for _ in range(repeats):
            for name, fn in runs.items():
                with Clock(torch.get_num_threads()) as clock:
                    fn()
                times[name].append((clock.wall, clock.cpu))
    out = {k: (min(w for w, _ in v), min(c_ for _, c_ in v)) for k, v in times.items()}
    out["max_abs_diff"] = (rel, rel)
    return out


def workload(model: SynthesizerTrnV3, ref_codes: int, target_codes: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "prompt_codes": torch.randint(0, 1024, (1, 1, ref_codes), generator=gen),
        "prompt_phones": torch.randint(0, 732, (1, ref_codes // 2), generator=gen),
        "codes": torch.randint(0, 1024, (1, 1, target_codes), generator=gen),
        "phones": torch.randint(0, 732, (1, target_codes // 2), generator=gen),
        "refer": torch.rand(1, 1025, 2 * ref_codes + 2, generator=gen),
        "mel_ref": torch.rand(1, 100, 4 * ref_codes + 1, generator=gen) * 2 - 1,
    }


def bench_encoder(model: SynthesizerTrnV3, w: dict, repeats: int) -> tuple[tuple, torch.Tensor, torch.Tensor]:
    def run():
        fea_ref, ge = model.decode_encp(w["prompt_codes"], w["prompt_phones"], w["refer"])
        return fea_ref, model.decode_encp(w["codes"], w["phones"], w["refer"], ge)[0]

    seconds = best_of(run, repeats)
    fea_ref, fea_todo = run()
    return seconds, fea_ref, fea_todo


def bench_cfm(model, fea_ref, mel_ref, fea_todo, steps_list, dtype, repeats) -> dict[str, tuple]:
    cfm = model.cfm if dtype == torch.float32 else copy.deepcopy(model.cfm).to(dtype)
    out: dict[str, tuple] = {}
    t = 1000
    mu = torch.randn(1, t, fea_ref.shape[1])
    cond, lens = torch.rand(1, 100, t).to(dtype), torch.tensor([t])
    x = torch.randn(1, 100, t).to(dtype)
    with torch.inference_mode():
        c = cfm.estimator.condition(cond, lens, torch.full((1,), 1 / 8), mu.transpose(1, 2).to(dtype))
        out["cfm_step_1000_s"] = best_of(lambda: cfm.estimator.velocity(x, torch.zeros(1), c), repeats)
    fea_ref, mel_ref = align_prompt(fea_ref, mel_ref, ChunkConfig().t_ref)
    for steps in steps_list:
        torch.manual_seed(0)
        with Clock(torch.get_num_threads()) as c:
            mel = generate_sequential(cfm, fea_ref, mel_ref, fea_todo, steps)
        assert mel.shape[-1] == fea_todo.shape[-1]
        out[f"cfm_{steps}_steps_s"] = (c.wall, c.cpu)
    return out


def bench_vocoder(frames: int, dtype: torch.dtype, repeats: int) -> tuple[float, float]:
    vocoder = realistic_init(build_vocoder()).to(dtype)
    mel = (torch.rand(1, 100, frames) * 10 - 10).to(dtype)
    with torch.inference_mode():
        return best_of(lambda: vocoder(mel), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--precision", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the per-step/encoder/vocoder timings")
    parser.add_argument("--ref-codes", type=int, default=125)
    parser.add_argument("--target-codes", type=int, default=200)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--ab-only", action="store_true", help="only the interleaved per-step A/B vs official ops")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(hardware_line("cpu"), flush=True)
    torch.manual_seed(0)
    model = realistic_init(SynthesizerTrnV3()).eval()
    ab = ab_step(model.cfm.estimator, args.repeats)
    print("[A/B fp32 step @1000 frames] " + ", ".join(f"{k} {v[0]:.3g} (cpu/thr {v[1]:.3g})" for k, v in ab.items()))
    print(f"ours / official-style wall: {ab['ours'][0] / ab['official_style'][0]:.3f}", flush=True)
    abv = ab_vocoder(args.target_codes * 4, args.repeats)
    print("[A/B fp32 vocoder] " + ", ".join(f"{k} {v[0]:.3g} (cpu/thr {v[1]:.3g})" for k, v in abv.items()))
    print(f"ours / official-style wall: {abv['ours'][0] / abv['official_style'][0]:.3f}", flush=True)
    if args.ab_only:
        return
    w = workload(model, args.ref_codes, args.target_codes)
    results: dict = {"threads": args.threads, "load_avg_start": os.getloadavg()[0], "official_fp32": OFFICIAL}
    results["ab_step_1000"], results["ab_vocoder"] = ab, abv
    enc_s, fea_ref, fea_todo = bench_encoder(model, w, args.repeats)
    results["decode_encp_s"] = enc_s
    for name in args.precision:
        dtype = DTYPES[name]
        res = bench_cfm(model, fea_ref, w["mel_ref"], fea_todo, args.steps, dtype, args.repeats)
        res["vocoder_s"] = bench_vocoder(fea_todo.shape[-1], dtype, args.repeats)
        results[name] = res
        print(f"[{name}] " + ", ".join(f"{k} {v[0]:.2f} (cpu/thr {v[1]:.2f})" for k, v in res.items()), flush=True)
    results["load_avg_end"] = os.getloadavg()[0]
    print(f"decode_encp {enc_s[0]:.2f} s (cpu/thr {enc_s[1]:.2f}); official fp32 (idle 2-core CPU): {OFFICIAL}")
    print(f"load average {results['load_avg_start']:.1f} -> {results['load_avg_end']:.1f} (wall times inflate above 2)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
