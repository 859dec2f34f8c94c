"""Resident voices: cold load vs cache hit, memory per voice, memory given back on eviction (full-size v2 voices).

Two full-size v2 voices with random weights (official GPT, SoVITS v2 and HuBERT sizes, no BERT) are logged in a
throw-away sqlite MLflow store; ``VoiceCache(max_voices=1)`` then loads one, serves it again, and loads the other
(evicting the first). Baseline: ``open_voice`` (no cache) for every request. Then two full-size v4 voices on one
base (the official ``s2Gv4.pth`` / vocoder / HuBERT layout with random weights in a throw-away pretrained folder,
each voice its own GPT and rank-32 LoRA) are made resident together, against each loaded alone (merged). Usage:
``python benchmarks/bench_voices.py [--precision fp32] [--threads 2] [--skip-v4]``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import psutil
import torch
from transformers import HubertConfig, HubertModel

from mockvox.checkpoints import save_sovits_checkpoint, write_checkpoint
from mockvox.infer.voices import VoiceCache, VoiceSource, open_voice, voice_bytes
from mockvox.models.hubert import HubertSSL
from mockvox.models.lora import add_lora
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.models.t2s import T2SConfig, Text2Semantic
from mockvox.models.vocoder_v4 import build_vocoder
from mockvox.precision import hardware_line
from mockvox.train.tracking import Tracker
from mockvox.voice import PRETRAINED, load_voice, write_voice


def _register(root: Path, name: str, seed: int) -> str:
    torch.manual_seed(seed)
    folder = write_voice(root / name, version="v2", gpt=Text2Semantic(T2SConfig()), sovits=SynthesizerTrn(),
                         sovits_kwargs={}, hubert=HubertSSL(HubertModel(HubertConfig()).eval()), bert=None)  # fmt: skip
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "bench", str(root / "artifacts"))
    with tracker.run(name) as run_id:
        model_id = tracker.log_voice(run_id, folder, {}, {}).model_id
    return model_id


def _pretrained_v4(folder: Path) -> SynthesizerTrnV3:
    """A pretrained folder with the official v4 files' layout (random weights); returns the base generator."""
    torch.manual_seed(0)
    base = SynthesizerTrnV3().eval()
    path = folder / PRETRAINED["sovits_base"]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_sovits_checkpoint(path, base.state_dict(), None, "bench", version="v4", export=False)
    write_checkpoint(build_vocoder().state_dict(), folder / PRETRAINED["vocoder"])
    HubertModel(HubertConfig()).save_pretrained(folder / PRETRAINED["hubert"])
    return base


def _register_v4(root: Path, base: SynthesizerTrnV3, name: str, seed: int) -> str:
    import copy

    torch.manual_seed(seed)
    model = add_lora(copy.deepcopy(base), rank=32)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "lora_B" in key:
                p.normal_(0, 0.01)
    folder = write_voice(root / name, version="v4", gpt=Text2Semantic(T2SConfig()), sovits=model, sovits_kwargs={},
                         hubert="pretrained", bert=None, sovits_base="pretrained", vocoder="pretrained")  # fmt: skip
    tracker = Tracker(f"sqlite:///{root}/mlflow.db", "bench", str(root / "artifacts"))
    with tracker.run(name) as run_id:
        return tracker.log_voice(run_id, folder, {}, {}).model_id


def bench_v4_shared(precision: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = _pretrained_v4(root / "pretrained")
        a, b = _register_v4(root, base, "a", 1), _register_v4(root, base, "b", 2)
        del base
        source = VoiceSource(Tracker(f"sqlite:///{root}/mlflow.db", "bench"), root / "models", root / "pretrained")
        alone = voice_bytes(load_voice(source.folder(b), source.pretrained_dir, precision=precision)) / 2**20
        source.folder(a)
        rss0 = _rss_mb()
        cache = VoiceCache(source, max_voices=4, precision=precision)
        _, cold = _timed(lambda: cache.get(a))
        one, rss1 = cache.resident_bytes / 2**20, _rss_mb()
        _, second = _timed(lambda: cache.get(b))
        two, rss2 = cache.resident_bytes / 2**20, _rss_mb()
    print(f"two full-size v4 voices on one base ({precision}): one voice alone (merged) {alone:.0f} MB of weights")
    print(f"VoiceCache: first voice {one:.0f} MB ({cold:.2f} s), both {two:.0f} MB ({second:.2f} s for the second): "
          f"the second adds {two - one:.0f} MB (its GPT and LoRA) instead of {alone:.0f} MB")  # fmt: skip
    print(f"process RSS: {rss0:.0f} MB before, {rss1:.0f} MB with one voice, {rss2:.0f} MB with both")


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-v4", action="store_true", help="only the v2 part")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    print(hardware_line("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a, b = _register(root, "a", 1), _register(root, "b", 2)
        source = VoiceSource(Tracker(f"sqlite:///{root}/mlflow.db", "bench"), root / "models", root / "pretrained")
        source.folder(a), source.folder(b)  # downloads out of the timings
        base_rss = _rss_mb()
        _, uncached = _timed(lambda: open_voice(a, source, precision=opts.precision))
        cache = VoiceCache(source, max_voices=1, precision=opts.precision)
        synth, cold = _timed(lambda: cache.get(a))
        _, warm = _timed(lambda: cache.get(f"models:/{a}"))
        held = voice_bytes(synth.voice) / 2**20
        del synth
        rss_one = _rss_mb()
        _, swap = _timed(lambda: cache.get(b))
        rss_swap = _rss_mb()
        cache.clear()
        rss_empty = _rss_mb()
    print(f"precision {opts.precision}, threads {opts.threads}, full-size v2 voice: {held:.0f} MB of weights")
    print(f"open_voice (no cache), every request: {uncached:.2f} s")
    print(f"VoiceCache cold get: {cold:.2f} s | cached get: {warm * 1e3:.1f} ms (registry lookup included)")
    print(f"VoiceCache get of another voice, evicting the first: {swap:.2f} s")
    print(f"process RSS: {base_rss:.0f} MB before, {rss_one:.0f} MB with one voice, {rss_swap:.0f} MB after the swap "
          f"(one voice), {rss_empty:.0f} MB after clear()")  # fmt: skip
    if not opts.skip_v4:
        bench_v4_shared(opts.precision)


if __name__ == "__main__":
    main()
