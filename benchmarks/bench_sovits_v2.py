"""SoVITS v2 decode speed: 200 codes (8 s at 32 kHz), 100 phones, 250-frame reference, full-size random weights.

Official GPT-SoVITS on a 2-core CPU (torch 2.13, fp32): 1.15-1.42 s (reference/gpt-sovits.md section 9).
Usage: ``python benchmarks/bench_sovits_v2.py [--repeats 3] [--threads 2] [--precision fp32 bf16 bf16-dec]``.
On a shared machine wall time is inflated by other processes; the CPU time per thread is what an idle machine would
take when both threads stay busy.
``bf16`` runs the whole network in bfloat16; ``bf16-dec`` only the HiFi-GAN decoder (the bulk of the time).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from mockvox.models.sovits_v2 import SynthesizerTrn

SAMPLE_RATE = 32000
N_CODES, N_PHONES, REF_FRAMES = 200, 100, 250


def _inputs(model: SynthesizerTrn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 1, N_CODES), generator=g)
    text = torch.randint(1, 732, (1, N_PHONES), generator=g)
    refer = torch.rand(1, 1025, REF_FRAMES, generator=g)
    return codes, text, refer


def _variant(base: SynthesizerTrn, precision: str) -> SynthesizerTrn:
    model = copy.deepcopy(base)
    if precision == "bf16":
        model.to(torch.bfloat16)
    elif precision == "bf16-dec":
        model.dec.to(torch.bfloat16)
    elif precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}; accepted: fp32, bf16, bf16-dec")
    return model


def _time_decode(model: SynthesizerTrn, args, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Median wall seconds and median process CPU seconds of ``decode`` (after one warm-up call)."""
    wav = model.decode(*args, noise_scale=0.5)  # warm-up (oneDNN primitive creation, weight folding)
    walls, cpus = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        wall, cpu = time.perf_counter(), time.process_time()
        wav = model.decode(*args, noise_scale=0.5)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), wav


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16", "bf16-dec"])
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    base = SynthesizerTrn(use_enc_q=False).eval()
    args = _inputs(base)
    reference = None
    print(f"threads={opts.threads} codes={N_CODES} phones={N_PHONES} ref_frames={REF_FRAMES}")
    for precision in opts.precision:
        seconds, cpu, wav = _time_decode(_variant(base, precision), args, opts.repeats)
        audio_s = wav.shape[-1] / SAMPLE_RATE
        line = (
            f"{precision:>8}: decode {seconds:.3f} s for {audio_s:.2f} s audio, RTF {seconds / audio_s:.4f}"
            f" (CPU time {cpu:.3f} s = {cpu / opts.threads:.3f} s per thread)"
        )
        if reference is None:
            reference = wav
        else:
            err = (wav - reference).abs().max().item()
            corr = torch.corrcoef(torch.stack([wav.flatten(), reference.flatten()]))[0, 1].item()
            line += f", vs {opts.precision[0]}: max|diff| {err:.3e}, corr {corr:.5f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
