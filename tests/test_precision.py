"""Reduced precision by capability: the per-network table, the forced-off probe, and oneDNN without bf16."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mockvox.modules.dit import linear
from mockvox.precision import Capabilities, capabilities, describe_plan, onednn_bf16, plan
from tests.conftest import REPO_ROOT

BF, FP = torch.bfloat16, torch.float32
I8 = torch.int8
AVX2 = Capabilities("cpu", "AVX2", onednn_bf16=False, fast_bf16=False, int8="fbgemm")
AVX512 = Capabilities("cpu", "AVX512", onednn_bf16=True, fast_bf16=False, int8="fbgemm")  # with or without AVX512-BF16
AMX = Capabilities("cpu", "AVX512", onednn_bf16=True, fast_bf16=True, int8="fbgemm")
OLD_CPU = Capabilities("cpu", "DEFAULT", onednn_bf16=False, fast_bf16=False)


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        (AVX2, {"gpt": FP, "sovits": FP, "vocoder": FP, "hubert": FP}),  # plain bf16 GEMV: slower than fp32
        (AVX512, {"gpt": BF, "sovits": FP, "vocoder": FP, "hubert": FP}),
        (AMX, {"gpt": BF, "sovits": BF, "vocoder": BF, "hubert": BF}),
        (OLD_CPU, {"gpt": FP, "sovits": FP, "vocoder": FP, "hubert": FP}),
        (Capabilities("cuda", "H100", True, True), {"gpt": BF, "sovits": BF, "vocoder": BF, "hubert": BF}),
        (Capabilities("cuda", "T4", True, False), {"gpt": FP, "sovits": FP, "vocoder": FP, "hubert": FP}),
    ],
)
def test_bf16_goes_only_where_the_hardware_runs_it_fast(caps, expected) -> None:
    assert plan("bf16", caps) == expected
    assert plan("fp32", caps) == dict.fromkeys(expected, FP)


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        (AVX2, {"gpt": I8, "sovits": FP, "vocoder": FP, "hubert": FP}),
        (AMX, {"gpt": I8, "sovits": FP, "vocoder": FP, "hubert": FP}),  # bf16 decoders: slow at every new length
        (OLD_CPU, {"gpt": FP, "sovits": FP, "vocoder": FP, "hubert": FP}),  # no int8 kernel: as bf16 would
        (Capabilities("cuda", "H100", True, True), {"gpt": BF, "sovits": BF, "vocoder": BF, "hubert": BF}),
    ],
)
def test_int8_goes_to_the_gpt_where_a_kernel_runs(caps, expected) -> None:
    assert plan("int8", caps) == expected
    assert "gpt=int8" in describe_plan("int8", expected, caps) or expected["gpt"] != I8
    assert plan({"gpt": "int8"}, AVX2)["gpt"] == I8
    with pytest.raises(ValueError, match="int8 is available for gpt only, not sovits"):
        plan({"sovits": "int8"}, AVX2)


@pytest.mark.parametrize("kernel", ["fbgemm", "int8pack", "off"])
def test_gpt_int8_decoding_on_each_kernel(monkeypatch, kernel) -> None:
    from mockvox.modules.packed import Int8Dynamic, Int8Pack
    from mockvox.precision import int8_kernel
    from tests.infer import tiny_gpt

    monkeypatch.setenv("MOCKVOX_CPU_INT8", kernel if kernel != "fbgemm" else "auto")
    if kernel == "fbgemm" and int8_kernel() != "fbgemm":
        pytest.skip("FBGEMM does not run on this CPU")
    ref = tiny_gpt()
    gpt = tiny_gpt().prepare_inference(int8_weights=True)
    packed = [m.packed_in for m in gpt.modules() if hasattr(m, "packed_in")]
    kind = {"fbgemm": Int8Dynamic, "int8pack": Int8Pack, "off": type(None)}[kernel]
    assert packed and all(type(p) is kind for p in packed)
    assert gpt.ar_predict_layer.packed is None and gpt.ar_predict_layer.weight.dtype == FP  # logits stay fp32
    g = torch.Generator().manual_seed(3)
    x, y = torch.randint(0, 700, (1, 9), generator=g), torch.randint(0, 1024, (1, 12), generator=g)
    args = (x, torch.tensor([9]), y, torch.tensor([12]), torch.randn(1, 1024, 9, generator=g))
    with torch.inference_mode():
        want, got = ref.eval().teacher_forced_logits(*args)[0], gpt.teacher_forced_logits(*args)[0]
    assert got.dtype == FP
    assert (got - want).abs().max() < (0.05 if kernel != "off" else 1e-5) * want.abs().max()


def test_fp16_on_gpu_explicit_mappings_and_errors() -> None:
    assert set(plan("fp16", Capabilities("cuda", "T4", True, False)).values()) == {torch.float16}
    assert plan({"gpt": "bf16", "sovits": "bf16"}, AVX2) == {"gpt": BF, "sovits": BF, "vocoder": FP, "hubert": FP}
    with pytest.raises(ValueError, match="accepted: fp32, bf16, fp16"):
        plan("int4", AVX2)
    with pytest.raises(ValueError, match="needs a GPU"):
        plan("fp16", AMX)
    with pytest.raises(ValueError, match="unknown networks \\['dit'\\]"):
        plan({"dit": "bf16"}, AMX)
    line = describe_plan("bf16", plan("bf16", AVX2), AVX2)
    assert line == ("precision bf16 on cpu (AVX2, bf16 kernels: none, int8 kernel: fbgemm): "
                    "gpt=fp32 sovits=fp32 vocoder=fp32 hubert=fp32")  # fmt: skip


def test_forcing_the_probe_off(monkeypatch) -> None:
    monkeypatch.setenv("MOCKVOX_CPU_BF16", "off")
    assert not onednn_bf16()
    caps = capabilities("cpu")
    assert not caps.onednn_bf16 and not caps.fast_bf16
    assert plan("bf16", caps)["sovits"] == FP


def test_dit_linear_falls_back_to_the_plain_bf16_matmul(monkeypatch) -> None:
    layer = torch.nn.Linear(64, 48).to(BF)
    x = torch.randn(2, 5, 64, dtype=BF)
    monkeypatch.setenv("MOCKVOX_CPU_BF16", "off")
    with torch.inference_mode():
        got = linear(layer, x, gelu=True)
    assert "_onednn_packed" not in layer.__dict__  # the oneDNN reorder was never asked for
    want = torch.nn.functional.gelu(layer.float()(x.float()), approximate="tanh")
    assert (got.float() - want).abs().max() < 0.05


def test_gpt_bf16_decoding_without_onednn_bf16(monkeypatch) -> None:
    from tests.infer import tiny_gpt

    monkeypatch.setenv("MOCKVOX_CPU_BF16", "off")
    gpt = tiny_gpt().prepare_inference(BF)
    packed = [m.packed for m in gpt.modules() if hasattr(m, "packed")]
    assert packed and all(p is None for p in packed)
    assert next(gpt.parameters()).dtype == BF


# Run on the real oneDNN limited to AVX2 (as on an AMD EPYC without AVX-512): on an AVX-512 machine this is where the
# unguarded reorder raised "bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq".
_AVX2_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from mockvox.audio.io import load_audio
    from mockvox.voice import load_voice
    from mockvox.infer.pipeline import SynthesisParams, Synthesizer
    from mockvox.precision import capabilities, onednn_bf16
    from tests.conftest import SAMPLES
    from tests.infer import write_v4

    assert not onednn_bf16(), "oneDNN limited to AVX2 must report no bf16 kernels"
    assert capabilities("cpu").isa == "AVX2"
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    ref = (audio[sr // 2 : sr // 2 + 5 * sr], sr)
    folder = write_v4(Path(sys.argv[1]) / "v4")
    every = dict.fromkeys(("gpt", "sovits", "vocoder", "hubert"), "bf16")
    for precision in ("bf16", every, "int8"):  # the plans, and every network in bf16 through the plain kernels
        voice = load_voice(folder, precision=precision)
        params = SynthesisParams(seed=0, max_tokens=6, sample_steps=2)
        rate, wav = Synthesizer(voice).synthesize(ref, "Hello there.", "en", "Good morning.", "en", params)
        assert np.isfinite(wav).all() and len(wav) > 0, precision
        print({k: str(v) for k, v in voice.precision.items()})
    print("ok")
    """
)


def test_bf16_paths_run_on_onednn_without_bf16(tmp_path) -> None:
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "PYTHONPATH": str(REPO_ROOT)}
    script = tmp_path / "avx2.py"
    script.write_text(_AVX2_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "ok"
    assert "'sovits': 'torch.float32'" in lines[0] and "'gpt': 'torch.float32'" in lines[0]  # the AVX2 plan
    assert "'sovits': 'torch.bfloat16'" in lines[1] and "'gpt': 'torch.bfloat16'" in lines[1]
    assert "'gpt': 'torch.int8'" in lines[2] and "'sovits': 'torch.float32'" in lines[2]  # int8 runs on AVX2


@pytest.mark.parametrize("isa", ["AVX512_CORE", "AVX512_CORE_BF16"])
def test_onednn_without_amx_keeps_convolutions_fp32(isa) -> None:
    """As on Skylake (AVX-512) or Zen 4 / Cooper Lake (AVX512-BF16): bf16 convolutions and GEMMs are slower there."""
    code = "from mockvox.precision import capabilities, plan; c = capabilities(); print(c.fast_bf16, plan('bf16', c))"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.startswith("False ") and "'sovits': torch.float32" in run.stdout
