"""Streaming: time to first audio, real-time factor and what each mode costs in quality, side by side with ``whole``.

Voices: a full-size v2 and a full-size v4 (official GPT, SoVITS, HuBERT, vocoder shapes; random weights; no BERT, so
Mandarin gets zero BERT features), the EOS row of the GPT zeroed so that every sentence runs to its token budget
(25 tokens per second of the sentence's expected length), the flows' zero-initialised output layers given small random
weights (a fresh flow is the identity), the v4 vocoder's upsampling scaled by 4 (else its biases drown its input and
every mel sounds alike). Reference: 5 s of the bundled English sample, its prompt cached before
timing (as it is for a voice in use). Sentences: short and long English and Mandarin. For every mode (whole,
fragment, token, fixed), with the same seed:

* in-process: time to the first chunk, split into text frontend / reference prompt (cached: ~0) / GPT prefill /
  the first tokens / the first decode; total time; real-time factor (time / seconds of audio);
* over HTTP (``--http``): ``mockvox serve`` on loopback with the voice registered in its store; time from the request
  to the first PCM byte after the WAV header (the voice's default reference, cached by a warm-up request);
* quality against ``whole`` (:mod:`mockvox.eval.streaming`): log-mel L1 over the clip / within 50 ms of a join / away
  from joins, the largest jump at a join against the whole decode's at the same places and the median jump (click
  ratio); and the listening metrics: speaker similarity of the stream to the whole (resemblyzer), DNSMOS of both,
  and the word error rate of the stream's transcript against the whole's (Whisper tiny.en, English).

Usage: ``python benchmarks/bench_stream.py [--versions v2 v4] [--http] [--threads 2] [--no-listen]
[--v4-sentences 1] [--modes whole fragment token fixed]`` (``--http``: v2 only). The v4 CFM (32 Euler steps of a
22-layer DiT) is slow on CPUs: by default v4 reads the short English sentence only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import torch

from mockvox.audio.io import load_audio
from mockvox.eval.streaming import chunk_joins, join_quality
from mockvox.infer.pipeline import SynthesisParams, Synthesizer
from mockvox.infer.streaming import MODES, StreamConfig
from mockvox.precision import hardware_line

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "voice_en.ogg"
PROMPT_TEXT = (ROOT / "samples" / "voice_en.txt").read_text().splitlines()[0]
SENTENCES = [  # (label, language, text, seconds of speech expected: the token budget)
    ("en short", "en", "The quick brown fox jumps over the lazy dog near the quiet river bank.", 4.0),
    ("zh short", "zh", "今天天气很好，我们一起去公园散步吧。", 4.0),
    (
        "en long",
        "en",
        "When the evening train finally pulled into the station, the travellers gathered their bags, "
        "thanked the conductor for his patience, and walked out into the cold and rainy night, "
        "looking for a place to stay until the morning came.",
        13.0,
    ),  # fmt: skip
    (
        "zh long",
        "zh",
        "当晚班火车终于驶进车站的时候，旅客们拿起行李，感谢列车员一路上的耐心照顾，然后走进寒冷的雨夜，"
        "在附近寻找一个可以住到天亮的地方。",
        12.0,
    ),  # fmt: skip
]
SEED = 11


def _voice_folder(root: Path, version: str, reference: Path) -> Path:
    from transformers import HubertConfig, HubertModel

    from mockvox.models.hubert import HubertSSL
    from mockvox.models.t2s import T2SConfig, Text2Semantic
    from mockvox.voice import Reference, write_voice

    torch.manual_seed(0)
    gpt = Text2Semantic(T2SConfig())
    with torch.no_grad():
        gpt.ar_predict_layer.weight[gpt.eos] = 0  # EOS logit 0: never in the top-k of 1024 random logits
    hubert = HubertSSL(HubertModel(HubertConfig()).eval())
    ref = Reference(reference, PROMPT_TEXT, "en")
    if version == "v2":
        from mockvox.models.sovits_v2 import SynthesizerTrn

        sovits = SynthesizerTrn()
        with torch.no_grad():
            for name, p in sovits.flow.named_parameters():
                if ".post." in name:
                    p.normal_(0, 0.02)
        return write_voice(root / "v2", version="v2", gpt=gpt, sovits=sovits, sovits_kwargs={}, hubert=hubert,
                           bert=None, reference=ref)  # fmt: skip
    from mockvox.models.lora import add_lora
    from mockvox.models.sovits_v4 import SynthesizerTrnV3
    from mockvox.models.vocoder_v4 import build_vocoder

    base = SynthesizerTrnV3().eval()
    model = add_lora(base, rank=32)
    vocoder = build_vocoder()
    with torch.no_grad():  # a random vocoder's biases drown its input (every mel sounds alike): scale its upsampling
        for up in vocoder.ups:
            up.weight.mul_(4)
    return write_voice(root / "v4", version="v4", gpt=gpt, sovits=model, sovits_kwargs={}, hubert=hubert, bert=None,
                       vocoder=vocoder, vocoder_kwargs={}, sovits_base=base, reference=ref)  # fmt: skip


def _listening(stream: np.ndarray, whole: np.ndarray, sr: int, language: str, asr) -> str:
    from mockvox.eval.metrics import cosine, embed, quality

    sim = cosine(embed(stream, sr), embed(whole, sr))
    mos_s, mos_w = quality(stream, sr)["dnsmos_ovrl"], quality(whole, sr)["dnsmos_ovrl"]
    text = f"sim {sim:.3f}  DNSMOS {mos_s:.2f} vs {mos_w:.2f}"
    if asr is not None and language == "en":
        import jiwer

        from mockvox.audio.io import resample

        heard = [asr.transcribe(resample(a, sr, 16000), "en") or "" for a in (stream, whole)]
        wer = jiwer.wer(heard[1], heard[0]) if heard[1].strip() else float("nan")
        text += f"  WER vs whole {wer:.2f}"
    return text


def _transcriber():
    from mockvox.data.asr import AsrConfig, Transcriber

    try:
        return Transcriber(AsrConfig(model="tiny.en", device="cpu"))
    except Exception as exc:  # noqa: BLE001 (the benchmark goes on without the WER column)
        print(f"(no WER: {exc})")
        return None


def yardstick(
    synth: Synthesizer, reference: Path, text: str, lang: str, params: SynthesisParams, whole: np.ndarray | None = None
) -> str:
    """How far the whole decode of the same tokens with other decoder noise lies from the whole decode: the scale
    against which a stream's distance means something (v2: the per-frame prior noise; v4: the CFM's start noise)."""
    prompt = synth.prompt(reference, PROMPT_TEXT, "en")
    units = synth.text_units(text, lang, params.split)
    tokens = synth.semantic_tokens(prompt, units, params, torch.Generator().manual_seed(params.seed))
    parts = []
    with torch.random.fork_rng():
        torch.manual_seed(params.seed + 1)
        for i, (unit, toks) in enumerate(zip(units, tokens, strict=True)):
            audio = synth.decode(prompt, unit, toks, params, noise_seed=params.seed + 1000 + i)
            parts.append(np.concatenate([audio, np.zeros(round(synth.sample_rate * params.fragment_interval))]))
    other = np.concatenate(parts).astype(np.float32)
    if whole is None:
        whole = np.concatenate([c.audio for c in synth.stream(reference, PROMPT_TEXT, "en", text, lang, params,
                                                               "whole")])  # fmt: skip
    q = join_quality(other, whole, synth.sample_rate, [])
    listen = _listening(other, whole, synth.sample_rate, lang, None)
    return f"the same tokens, other decoder noise, against whole: log-mel L1 {q.mel_l1:.4f}; {listen}"


def bench_inprocess(synth: Synthesizer, reference: Path, sentences, listen: bool, modes=MODES) -> None:
    asr = _transcriber() if listen else None
    sr = synth.sample_rate
    for label, lang, text, seconds in sentences:
        params = SynthesisParams(seed=SEED, max_tokens=round(25 * seconds))
        results = {}
        for mode in ("whole", *(m for m in modes if m != "whole")):
            began = time.perf_counter()
            chunks = list(synth.stream(reference, PROMPT_TEXT, "en", text, lang, params, mode))
            took = time.perf_counter() - began
            audio = np.concatenate([c.audio for c in chunks])
            results[mode] = (chunks, audio, took)
        whole = results["whole"][1]
        print(f"\n{synth.voice.version} {label} ({params.max_tokens} tokens, {len(whole) / sr:.1f} s of audio)")
        print(f"  {'mode':9} {'first':>7} {'text':>6} {'prefill':>7} {'tokens':>11} {'decode':>7} {'total':>7} "
              f"{'RTF':>5} {'chunks':>6}  log-mel L1 all/joins/away   jump join/whole/median")  # fmt: skip
        for mode, (chunks, audio, took) in results.items():
            t = chunks[0].timing
            first_tokens = f"{t.get('tokens', t.get('gpt', 0)):.2f}s/{int(t.get('first_tokens', params.max_tokens))}"
            decode = t.get("decode", 0.0)
            prefill = f"{t['prefill']:.2f}" if "prefill" in t else "-"
            q = join_quality(audio, whole, sr, chunk_joins(chunks))
            print(f"  {mode:9} {chunks[0].elapsed:7.2f} {t['text']:6.3f} {prefill:>7} {first_tokens:>11} "
                  f"{decode:7.2f} {took:7.2f} {took / (len(audio) / sr):5.2f} {len(chunks):6}  "
                  f"{q.mel_l1:.4f}/{q.mel_l1_joins:.4f}/{q.mel_l1_away:.4f}   "
                  f"{q.join_jump:.3f}/{q.whole_jump:.3f}/{q.median_jump:.4f} (ratio {q.click_ratio:.1f})")  # fmt: skip
        print(f"  yardstick: {yardstick(synth, reference, text, lang, params, whole)}")
        if listen:
            for mode in [m for m in ("token", "fixed") if m in results]:
                print(f"  {mode:9} listening vs whole: {_listening(results[mode][1], whole, sr, lang, asr)}")


def bench_http(folder: Path, version: str, sentences) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_api import Server

    from mockvox.config import compose
    from mockvox.train.tracking import Tracker

    with tempfile.TemporaryDirectory(prefix="bench-stream-http-") as tmp:
        data = Path(tmp) / "data"
        cfg = compose("infer", [f"paths.data_dir={data}"])
        tracker = Tracker.from_config(cfg.logger)
        with tracker.run(f"bench-stream-{version}") as run_id:
            model_id = tracker.log_voice(run_id, folder, {}, {}).model_id
        server = Server(data, [])
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.url, timeout=1800) as client:
                print(f"\n{version} over HTTP: mockvox serve on {server.url} (time to the first PCM byte after the WAV "
                      "header; the voice's default reference, its prompt cached by a warm-up request)")  # fmt: skip
                for label, lang, text, seconds in sentences:
                    query = {"model_id": model_id, "target_text": text, "target_language": lang, "seed": SEED,
                             "max_tokens": round(25 * seconds)}  # fmt: skip
                    _first_byte(client, {**query, "streaming_mode": "token"})  # warm-up: voice, prompt
                    cells = []
                    for mode in MODES:
                        first, total, size = _first_byte(client, {**query, "streaming_mode": mode})
                        cells.append(f"{mode} {first:.2f} s (all {total:.2f} s)")
                    print(f"  {label:9} first audio: " + " | ".join(cells))
        finally:
            server.stop()


def _first_byte(client: httpx.Client, query: dict) -> tuple[float, float, int]:
    began = time.perf_counter()
    first, size = None, 0
    with client.stream("GET", "/streamInference", params=query) as r:
        if r.status_code != 200:
            raise RuntimeError(f"/streamInference {r.status_code}: {r.read()[:300]!r}")
        for piece in r.iter_raw():
            size += len(piece)
            if first is None and size > 44:
                first = time.perf_counter() - began
    return first or float("nan"), time.perf_counter() - began, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=["v2", "v4"], choices=["v2", "v4"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda ... (in-process runs)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "int8"])
    parser.add_argument("--http", action="store_true", help="also time /streamInference on a loopback server")
    parser.add_argument("--no-listen", dest="listen", action="store_false", help="skip the listening metrics")
    parser.add_argument("--v4-sentences", type=int, default=1, help="how many of the sentences v4 reads")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="how many sentences v2 reads")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="beside whole, always run")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(opts.threads))
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from mockvox.voice import load_voice

    print(hardware_line(opts.device), f"(the voices here: {opts.precision}) | {opts.threads} threads")
    print(f"stream defaults: {StreamConfig()}")
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        root = Path(tmp)
        audio, sr = load_audio(SAMPLE)
        reference = root / "ref.wav"
        sf.write(reference, audio[sr // 2 : sr // 2 + 5 * sr], sr)
        for version in opts.versions:
            folder = _voice_folder(root, version, reference)
            synth = Synthesizer(load_voice(folder, device=opts.device, precision=opts.precision))
            synth.prompt(reference, PROMPT_TEXT, "en")  # cached, as for a voice in use
            count = opts.sentences if version == "v2" else opts.v4_sentences
            for lang in {lang for _, lang, _, _ in SENTENCES[:count]}:  # the frontends' first-call loads, off the clock
                warm = "Warm up." if lang == "en" else "热身。"
                list(synth.stream(reference, PROMPT_TEXT, "en", warm, lang, SynthesisParams(seed=0, max_tokens=20)))
            bench_inprocess(synth, reference, SENTENCES[:count], opts.listen, opts.modes)
            del synth
            if opts.http and version == "v2":  # v4: registering runs a full v4 synthesis (minutes on a CPU)
                bench_http(folder, version, SENTENCES[:count])


if __name__ == "__main__":
    main()
