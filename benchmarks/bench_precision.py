"""fp32 against bf16 per operation kind on this CPU, next to what ``precision=bf16`` picks for each network.

The operations are shaped like the networks' hot spots: the GPT's per-token GEMV (bandwidth-bound), the SoVITS /
vocoder convolutions and transposed convolutions, HuBERT's and the DiT's batched attention matmuls. A ratio above 1
means bf16 is slower than fp32 here. Timed interleaved, median of ``--repeats``.
Usage: ``python benchmarks/bench_precision.py [--threads 2] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mockvox.modules.ar_transformer import Linear
from mockvox.modules.dit import linear as dit_linear
from mockvox.precision import hardware_line


def _cases() -> dict[str, tuple[str, Callable[[torch.dtype], Callable[[], torch.Tensor]]]]:
    g = torch.Generator().manual_seed(0)

    def gemv(dtype):  # the GPT's own decoding linear: column-major fp32, oneDNN-packed bf16 where supported
        layer = Linear(2048, 8192, bias=False).to(dtype).eval()  # 64 MB of fp32 weights: out of cache
        layer.prepare_inference()
        x = torch.randn(1, 2048, generator=g).to(dtype)
        return lambda: [layer(x) for _ in range(20)][-1]  # 20 tokens

    def gemm(dtype):  # a DiT linear over 1000 mel frames, oneDNN as in modules/dit.py
        layer = torch.nn.Linear(1024, 1024).to(dtype)
        x = torch.randn(1, 1000, 1024, generator=g).to(dtype)
        return lambda: [dit_linear(layer, x) for _ in range(4)][-1]

    def conv(dtype):
        x, w = torch.randn(1, 256, 16000, generator=g).to(dtype), torch.randn(256, 256, 7, generator=g).to(dtype)
        return lambda: F.conv1d(x, w, padding=3)

    def deconv(dtype):
        x, w = torch.randn(1, 256, 4000, generator=g).to(dtype), torch.randn(256, 128, 8, generator=g).to(dtype)
        return lambda: F.conv_transpose1d(x, w, stride=4, padding=2)

    def bmm(dtype):
        a, b = torch.randn(16, 800, 64, generator=g).to(dtype), torch.randn(16, 64, 800, generator=g).to(dtype)
        return lambda: torch.bmm(a, b)

    return {
        "20x GEMV 2048->8192 (GPT decoding)": ("gpt", gemv),
        "4x GEMM 1000x1024x1024 (v4 DiT)": ("dit", gemm),
        "conv1d 256ch k7 x16000 (SoVITS/vocoder)": ("sovits", conv),
        "conv_transpose1d 256->128 x4 (upsampler)": ("vocoder", deconv),
        "bmm 16x800x64x800 (HuBERT/DiT attention)": ("hubert", bmm),
    }


def _time(fn: Callable[[], torch.Tensor]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    print(f"threads={opts.threads} repeats={opts.repeats}")
    print(hardware_line("cpu"))
    for name, (network, make) in _cases().items():
        fns = {dtype: make(dtype) for dtype in (torch.float32, torch.bfloat16)}
        times = {dtype: [] for dtype in fns}
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(opts.repeats):
            for dtype, fn in fns.items():
                times[dtype].append(_time(fn))
        fp32, bf16 = (statistics.median(times[d]) for d in fns)
        print(f"{name:>44}: fp32 {fp32 * 1e3:8.2f} ms  bf16 {bf16 * 1e3:8.2f} ms  bf16/fp32 {bf16 / fp32:5.2f}x"
              f"  ({network})")  # fmt: skip


if __name__ == "__main__":
    main()
