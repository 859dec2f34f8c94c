"""The evaluation's cost per sentence on this machine, beside the synthesis it scores (the baseline).

A tiny v2 voice is trained from scratch on the bundled English sample (``experiment=demo``, one epoch per stage, no
evaluation) in a temporary data root; then, per bundled English sentence: the synthesis alone (what speaking it
costs anyway), Whisper ``tiny.en`` and ``base`` transcription (of the clip, and of the voice's real reference clip:
Whisper's VAD skips most of a babbling voice), the resemblyzer embedding, DNSMOS; and the whole
``evaluate`` (voice + held-out slice + floor, logged to MLflow) divided by its number of clips. Whisper comes from
the MockVox home (``make install`` puts ``base`` and ``tiny.en`` there). ``--precisions fp32,int8`` then evaluates
the same voice in each precision and prints their scores side by side (reduced precision must leave them within
noise). Usage: ``python benchmarks/bench_eval.py [--sentences 4] [--max-tokens 150] [--precisions fp32,int8]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mockvox.audio.io import load_audio
from mockvox.data.asr import AsrConfig, Transcriber
from mockvox.eval.metrics import default_encoder, embed, intelligibility, quality
from mockvox.eval.run import evaluate, load_sentences
from mockvox.infer.pipeline import SynthesisParams
from mockvox.infer.voices import VoiceSource, open_voice
from mockvox.precision import hardware_line

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "voice_en.ogg"


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def _train(root: Path, max_tokens: int):
    from mockvox.data.pipeline import DatasetPipeline, PrepareConfig
    from mockvox.data.store import DatasetStore
    from mockvox.train.config import compose_train
    from mockvox.train.run import train

    pipe = DatasetPipeline(DatasetStore(root / "data"), PrepareConfig(asr=AsrConfig(model="tiny.en")))
    with contextlib.redirect_stdout(sys.stderr):
        file_id = pipe.upload(SAMPLE, "en", denoise_audio=False).file_id
        cfg = compose_train(["experiment=demo", f"paths.data_dir={root / 'data'}", f"data.file_id={file_id}",
                             "epochs.sovits=1", "epochs.gpt=1", "callbacks.progress=false", "evaluate=false",
                             f"evaluation.max_tokens={max_tokens}"])  # fmt: skip
        return cfg, train(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=150)
    parser.add_argument("--precisions", default="", help="e.g. fp32,int8: evaluate the voice in each, side by side")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(hardware_line())
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        cfg, trained = _train(Path(tmp), args.max_tokens)
        synth = open_voice(trained.model_id, VoiceSource.from_config(cfg))
        texts = load_sentences("en")[: args.sentences]
        params = SynthesisParams(seed=0, max_tokens=args.max_tokens)
        asr = {name: Transcriber(AsrConfig(model=name)) for name in ("tiny.en", "base")}
        clip = synth.speak(texts[0], "en", params)  # warm-up: every model loaded once before timing
        for model in asr.values():
            intelligibility(clip[1], clip[0], texts[0], "en", model)
        embed(clip[1], clip[0], default_encoder())
        quality(clip[1], clip[0])
        costs: dict[str, list[float]] = {k: [] for k in ("synthesis", "asr tiny.en", "asr base", "speaker", "dnsmos")}
        seconds = []
        for text in texts:
            spent, (sr, audio) = _timed(synth.speak, text, "en", params)
            costs["synthesis"].append(spent)
            seconds.append(len(audio) / sr)
            for name, model in asr.items():
                costs[f"asr {name}"].append(_timed(intelligibility, audio, sr, text, "en", model)[0])
            costs["speaker"].append(_timed(embed, audio, sr, default_encoder())[0])
            costs["dnsmos"].append(_timed(quality, audio, sr)[0])
        real, real_sr = load_audio(synth.voice.reference.audio)  # the tiny voice babbles: Whisper's VAD skips most
        for name, model in asr.items():  # of it, so real speech shows what transcription costs
            costs[f"asr {name}, real speech"] = [
                _timed(intelligibility, real, real_sr, synth.voice.reference.text, "en", model)[0] for _ in texts
            ]
        cfg.evaluation.limit = args.sentences
        cfg.asr.model = "base"
        spent, result = _timed(evaluate, trained.model_id, cfg, transcriber=asr["base"])
        clips = len(result["sentences"])
        by_precision = {}
        for precision in filter(None, args.precisions.split(",")):
            cfg.evaluation.precision = precision
            by_precision[precision] = _timed(evaluate, trained.model_id, cfg, transcriber=asr["base"])
    print(f"tiny v2 voice, {len(texts)} English sentences, max_tokens {args.max_tokens} "
          f"(clips of {statistics.mean(seconds):.1f} s on average)")  # fmt: skip
    print(f"{'per clip':32} {'mean s':>8} {'x synthesis':>12}")
    base = statistics.mean(costs["synthesis"])
    for name, values in costs.items():
        print(f"{name:32} {statistics.mean(values):8.3f} {statistics.mean(values) / base:12.2f}")
    scoring = sum(statistics.mean(costs[k]) for k in ("asr base, real speech", "speaker", "dnsmos"))
    print(f"{'scoring (base real + sim + mos)':32} {scoring:8.3f} {scoring / base:12.2f}")
    print(f"{'evaluate() per clip':32} {spent / clips:8.3f} {spent / clips / base:12.2f}   "
          f"({clips} clips: voice, floor, real held-out slice; {spent:.1f} s with logging)")  # fmt: skip
    if by_precision:
        summaries = [r["summary"] for _, r in by_precision.values()]
        keys = sorted({k for s in summaries for k in s if k.count("/") == 1})  # the voice's (not floor/ceiling)
        print(f"{'scores of the voice':32} " + " ".join(f"{p:>10}" for p in by_precision))
        for key in keys:
            print(f"{key:32} " + " ".join(f"{s.get(key, float('nan')):10.4f}" for s in summaries))
        print(f"{'evaluate() seconds':32} " + " ".join(f"{t:10.1f}" for t, _ in by_precision.values()))


if __name__ == "__main__":
    main()
