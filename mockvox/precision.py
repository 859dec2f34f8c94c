"""What reduced precision the hardware runs well, and the per-network precision chosen from it.

A request for ``int8`` gives the GPT int8 weight-only matmuls (FBGEMM, fp32 activations; the output layer stays fp32)
on every CPU with a working int8 kernel and keeps the other networks in fp32 (on a GPU: what ``bf16`` gives). Not bf16
for the decoders even on AMX: oneDNN builds its bf16 convolution kernels for every new input length, and a request's
length is almost always new (SoVITS v2 decode of 8 s on AMX: bf16 0.5 s for a length seen before, 3.5 s for a new
one, fp32 1.2-1.5 s; ``bench_gpt.py --e2e``). A request for ``bf16`` is a request for speed: each network gets
bfloat16 only where the hardware found runs that network's operations fast in bfloat16, else float32 (streams, whose
decoder windows come in few lengths, gain most from it). The table (measured with ``benchmarks/bench_precision.py``;
only AMX tiles make bf16 convolutions and GEMMs faster than fp32, AVX512-BF16 alone does not):

| hardware | GPT (bandwidth-bound GEMV) | SoVITS, DiT, vocoder, HuBERT (convolutions, GEMMs) |
|---|---|---|
| CUDA with bf16 | bf16 | bf16 |
| CPU with AMX (oneDNN bf16 on tiles) | bf16, oneDNN-packed (1.2x fp32; int8: 3.3x) | bf16 |
| CPU with oneDNN bf16 but no AMX (AVX-512, AVX512-BF16) | bf16, oneDNN-packed | fp32 (1.3-5x slower in bf16) |
| CPU without oneDNN bf16 (AVX2) | fp32 (plain bf16: 0.76x the fp32 step; int8: 3.2x) | fp32 (8-190x slower in bf16) |

The kernel-level probes (:func:`onednn_bf16`) guard every oneDNN bf16 call, so a network cast to bf16 by hand still
runs (through the plain kernels) where oneDNN has no bf16 path. ``MOCKVOX_CPU_BF16=off`` makes the probes answer
no, as on a CPU without bf16 support (the tests force this to check the fallbacks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import torch

log = logging.getLogger(__name__)

NAMES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}
INT8_NETWORKS = {"gpt"}  # int8 weight-only is implemented for the GPT (bandwidth-bound decoding) only
NETWORKS = ("gpt", "sovits", "vocoder", "hubert")
_BANDWIDTH_BOUND = {"gpt"}  # decoding reads every weight once per token: halving the bytes pays where oneDNN packs


@dataclass(frozen=True)
class Capabilities:
    """What one device offers for reduced precision."""

    device: str  # "cpu" | "cuda" | ...
    isa: str  # ATen's CPU kernel level ("AVX512", "AVX2", "DEFAULT") or the GPU name
    onednn_bf16: bool  # oneDNN has bf16 kernels here (AVX512BW/VL/DQ or AVX-NE-CONVERT)
    fast_bf16: bool  # bf16 compute beats fp32: AMX tiles on a CPU, bf16 support on a GPU
    int8: str = ""  # the int8 weight-only kernel that runs here ("fbgemm", "int8pack"; "" = none)

    def describe(self) -> str:
        if self.device != "cpu":
            return f"{self.device} ({self.isa}, bf16 {'yes' if self.fast_bf16 else 'no'})"
        kernels = "AMX" if self.fast_bf16 else ("oneDNN, no AMX" if self.onednn_bf16 else "none")
        return f"cpu ({self.isa}, bf16 kernels: {kernels}, int8 kernel: {self.int8 or 'none'})"


def _forced_off() -> bool:
    return os.environ.get("MOCKVOX_CPU_BF16", "auto").strip().lower() in ("off", "0", "false", "no")


# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA) that still include AMX; "ALL" is the default (no limit).
_AMX_ISAS = {"ALL", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16"}
_AMX_ISAS |= {"AVX10_2_512_AMX_2"}


@cache
def _cpu_probe() -> tuple[bool, bool]:
    try:
        onednn = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    amx = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", lambda: False)()
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").strip().upper() or "ALL"
    return onednn, bool(onednn and amx and isa_cap in _AMX_ISAS)


def onednn_bf16() -> bool:
    """True when oneDNN's bf16 kernels (weight reorder, fused linear) run on this CPU."""
    return not _forced_off() and _cpu_probe()[0]


def capabilities(device: str | torch.device = "cpu") -> Capabilities:
    """Probe ``device`` (cheap after the first call)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return Capabilities("cuda", torch.cuda.get_device_name(index), True, torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return Capabilities(device.type, device.type, False, False)
    onednn, fast = (False, False) if _forced_off() else _cpu_probe()
    return Capabilities("cpu", torch.backends.cpu.get_cpu_capability(), onednn, fast, int8_kernel() or "")


def _dtype(name: str) -> torch.dtype:
    if name not in NAMES:
        raise ValueError(f"unknown precision {name!r}; accepted: {', '.join(NAMES)}")
    return NAMES[name]


def plan(requested: str | Mapping[str, str], caps: Capabilities) -> dict[str, torch.dtype]:
    """Per-network dtypes for a requested precision on hardware ``caps``.

    A name (``fp32``, ``bf16``, ``fp16``) is a wish that each network gets where it is fast; a mapping
    ``{network: name}`` is taken as given (networks it leaves out run fp32).

    Raises:
        ValueError: an unknown precision or network name, or fp16 on a CPU.
    """
    if isinstance(requested, Mapping):
        unknown = sorted(set(requested) - set(NETWORKS))
        if unknown:
            raise ValueError(f"unknown networks {unknown} in precision; accepted: {', '.join(NETWORKS)}")
        chosen = {net: _dtype(requested.get(net, "fp32")) for net in NETWORKS}
        odd = sorted(net for net in NETWORKS if chosen[net] == torch.int8 and net not in INT8_NETWORKS)
        if odd:
            raise ValueError(f"int8 is available for {', '.join(sorted(INT8_NETWORKS))} only, not {', '.join(odd)}")
    else:
        wish = _dtype(requested)
        chosen = {net: wish if _fast(wish, net, caps) else torch.float32 for net in NETWORKS}
        if wish == torch.int8:  # int8 where it runs; on a CPU the decoders stay fp32 (see the module docstring)
            rest = plan("bf16", caps)
            if caps.device == "cpu":
                rest = {net: rest[net] if net in INT8_NETWORKS else torch.float32 for net in NETWORKS}
            chosen = {net: wish if chosen[net] == wish else rest[net] for net in NETWORKS}
    if caps.device == "cpu" and torch.float16 in chosen.values():
        raise ValueError("precision fp16 needs a GPU; on the CPU use fp32, bf16 or int8")
    return chosen


def _fast(dtype: torch.dtype, network: str, caps: Capabilities) -> bool:
    if dtype == torch.float32:
        return True
    if dtype == torch.int8:
        return caps.device == "cpu" and network in INT8_NETWORKS and bool(caps.int8)
    if caps.device == "cuda":
        return dtype == torch.float16 or caps.fast_bf16
    if caps.device != "cpu" or dtype != torch.bfloat16:
        return caps.device == "cpu"  # fp16 on a CPU is refused by plan(); other devices stay fp32
    if caps.fast_bf16:
        return True
    return network in _BANDWIDTH_BOUND and caps.onednn_bf16  # the plain bf16 matmul loses to fp32 (AVX2)


def describe_plan(requested: str | Mapping[str, str], chosen: Mapping[str, torch.dtype], caps: Capabilities) -> str:
    """One line naming the hardware and what each network runs in."""
    names = {v: k for k, v in NAMES.items()}
    parts = " ".join(f"{net}={names[chosen[net]]}" for net in NETWORKS)
    return f"precision {requested} on {caps.describe()}: {parts}"


def int8_kernel() -> str | None:
    """The int8 weight-only kernel this CPU runs: ``"fbgemm"`` (u8 x s8, fp32 in and out), ``"int8pack"`` (ATen's
    ``_weight_int8pack_mm``, bf16 activations) or None; probed once on a tiny matrix. ``MOCKVOX_CPU_INT8=off``
    answers None, ``MOCKVOX_CPU_INT8=int8pack`` skips FBGEMM (the tests force both to check the fallbacks)."""
    forced = os.environ.get("MOCKVOX_CPU_INT8", "auto").strip().lower()
    if forced in ("off", "0", "false", "no"):
        return None
    return _int8_probe(forced == "int8pack")


@cache
def _int8_probe(skip_fbgemm: bool) -> str | None:
    from mockvox.modules.packed import Int8Dynamic, Int8Pack

    w, x = torch.randn(8, 16), torch.randn(1, 16)
    want = x @ w.t()
    for name, make in (("fbgemm", lambda: Int8Dynamic(w, None)), ("int8pack", lambda: Int8Pack(w))):
        if skip_fbgemm and name == "fbgemm":
            continue
        try:
            got = make()(x, None).float()
        except (RuntimeError, AttributeError, NotImplementedError):
            continue
        if (got - want).abs().max() <= 0.1 * want.abs().max() + 0.1:
            return name
    return None


@cache
def note_plain_bf16_fallback() -> None:
    """Say once that oneDNN's bf16 kernels are unavailable and the plain ones are used."""
    log.info("oneDNN bf16 kernels unavailable on this CPU (need AVX512BW/VL/DQ or AVX-NE-CONVERT): plain bf16 matmul")


def hardware_line(device: str | torch.device = "cpu") -> str:
    """What ``precision=bf16`` picks on ``device``: for benchmark output and ``mockvox`` diagnostics."""
    caps = capabilities(device)
    return describe_plan("bf16", plan("bf16", caps), caps)
