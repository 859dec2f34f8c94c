"""SoVITS v2 decode speed: 200 codes (8 s at 32 kHz), 100 phones, 250-frame reference, full-size random weights.

Official GPT-SoVITS on a 2-core CPU (torch 2.13, fp32): 1.15-1.42 s (reference/gpt-sovits.md section 9).
Variants: ``fp32-upstream`` = our network in the upstream [B, C, T] decoder layout (the official op sequence),
``fp32`` = channels-last decoder, ``bf16-dec`` = decoder in bfloat16 (encoder/flow fp32), ``bf16`` = all bfloat16.
The variants are timed interleaved so that a shared machine's load hits them alike; the CPU time per thread is what
an idle machine would take when both threads stay busy.
Usage: ``python benchmarks/bench_sovits_v2.py [--repeats 3] [--threads 2] [--variants fp32 bf16-dec ...]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.precision import hardware_line

SAMPLE_RATE = 32000
N_CODES, N_PHONES, REF_FRAMES = 200, 100, 250
VARIANTS = ("fp32-upstream", "fp32", "bf16-dec", "bf16")


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 1, N_CODES), generator=g)
    text = torch.randint(1, 732, (1, N_PHONES), generator=g)
    refer = torch.rand(1, 1025, REF_FRAMES, generator=g)
    return codes, text, refer


def _variant(base: SynthesizerTrn, name: str) -> SynthesizerTrn:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; accepted: {', '.join(VARIANTS)}")
    model = copy.deepcopy(base)
    model.dec.channels_last = name != "fp32-upstream"
    if name == "bf16":
        model.to(torch.bfloat16)
    elif name == "bf16-dec":
        model.dec.to(torch.bfloat16)
    return model


def _decode(model: SynthesizerTrn, args) -> tuple[float, float, torch.Tensor]:
    torch.manual_seed(0)
    wall, cpu = time.perf_counter(), time.process_time()
    wav = model.decode(*args, noise_scale=0.5)
    return time.perf_counter() - wall, time.process_time() - cpu, wav


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    base = SynthesizerTrn(use_enc_q=False).eval()
    args = _inputs()
    models = {name: _variant(base, name) for name in opts.variants}
    walls = {name: [] for name in models}
    cpus = {name: [] for name in models}
    wavs = {name: _decode(model, args)[2] for name, model in models.items()}  # warm-up (oneDNN primitives)
    for _ in range(opts.repeats):
        for name, model in models.items():
            wall, cpu, _ = _decode(model, args)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(hardware_line("cpu"))
    print(f"threads={opts.threads} codes={N_CODES} phones={N_PHONES} ref_frames={REF_FRAMES} repeats={opts.repeats}")
    reference = wavs[opts.variants[0]]
    for name in models:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        audio_s = wavs[name].shape[-1] / SAMPLE_RATE
        line = (
            f"{name:>13}: decode {wall:.3f} s (min {min(walls[name]):.3f}) for {audio_s:.2f} s audio,"
            f" RTF {wall / audio_s:.4f} | CPU time {cpu:.3f} s = {cpu / opts.threads:.3f} s per thread"
        )
        if name != opts.variants[0]:
            err = (wavs[name] - reference).abs().max().item()
            corr = torch.corrcoef(torch.stack([wavs[name].flatten(), reference.flatten()]))[0, 1].item()
            line += f" | vs {opts.variants[0]}: max|diff| {err:.2e}, corr {corr:.5f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
