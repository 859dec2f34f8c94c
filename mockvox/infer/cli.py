"""``mockvox inference | speak | info | models``: synthesis and voice details from the tracking store.

Everything here composes ``conf/infer.yaml`` (paths, tracking store, device, precision, cache) and goes through
:mod:`mockvox.infer.voices`, the same path the pyfunc and the API take.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mockvox.infer.pipeline import LANGUAGES as _MODES

LANGUAGES = sorted(_MODES)


def _config(args):
    from mockvox.config import compose

    overrides = list(args.overrides)
    for key in ("device", "precision"):
        if getattr(args, key, None) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    return compose("infer", overrides)


def _source(args):
    from mockvox.infer.voices import VoiceSource, apply_threads

    cfg = _config(args)
    apply_threads(cfg)
    return VoiceSource.from_config(cfg), cfg


def _params(args):
    from mockvox.infer.pipeline import SynthesisParams

    return SynthesisParams(top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, speed=args.speed,
                           repetition_penalty=args.repetition_penalty, seed=args.seed, split=args.split,
                           max_tokens=args.max_tokens, sample_steps=args.sample_steps)  # fmt: skip


def _write(args, sr: int, audio) -> None:
    from mockvox.audio.io import write_wav
    from mockvox.paths import absolute

    write_wav(args.output, audio, sr)
    print(absolute(args.output))


def cmd_inference(args) -> None:
    from mockvox.infer.voices import open_voice
    from mockvox.progress import Bars

    source, cfg = _source(args)
    synth = open_voice(args.model_id, source, cfg.device, cfg.precision)
    sr, audio = synth.synthesize(args.ref_audio, args.prompt_text, args.promptLanguage, args.target_text,
                                 args.targetLanguage, _params(args), Bars().for_step("synthesis"))  # fmt: skip
    _write(args, sr, audio)


def cmd_speak(args) -> None:
    from mockvox.infer.voices import open_voice
    from mockvox.progress import Bars

    source, cfg = _source(args)
    synth = open_voice(args.model_id, source, cfg.device, cfg.precision)
    if args.stream is not None or str(args.output) == "-":
        _speak_stream(args, synth, cfg)
        return
    sr, audio = synth.speak(args.text, args.language, _params(args), Bars().for_step("synthesis"))
    _write(args, sr, audio)


def _speak_stream(args, synth, cfg) -> None:
    """Write the audio as its chunks arrive: to a WAV file (its header completed at the end) or, with ``-o -``, to
    stdout (a WAV header of unknown length then PCM, or bare PCM with ``--format raw``); a line on stderr says when
    the first audio came and the real-time factor."""
    import sys
    import time

    import soundfile as sf
    from omegaconf import OmegaConf

    from mockvox.audio.io import pcm16, wav_header
    from mockvox.infer.streaming import StreamConfig
    from mockvox.paths import absolute

    defaults = OmegaConf.to_container(cfg.get("stream") or {}, resolve=True)
    stream = StreamConfig.from_mapping(defaults, mode=args.stream or "whole")
    default = synth.voice.reference
    lang = args.language or (default.language if default is not None else "zh")
    began = time.perf_counter()
    chunks = synth.stream(None, None, None, args.text, lang, _params(args), stream)
    first, samples = None, 0
    to_stdout = str(args.output) == "-"
    sink = sys.stdout.buffer if to_stdout else sf.SoundFile(args.output, "w", synth.sample_rate, 1, subtype="PCM_16")
    try:
        if to_stdout and args.format == "wav":
            sink.write(wav_header(synth.sample_rate))
        for chunk in chunks:
            first = chunk.elapsed if first is None else first
            samples += len(chunk.audio)
            if to_stdout:
                sink.write(pcm16(chunk.audio))
            else:
                sink.write(chunk.audio)
            sink.flush()
    finally:
        if not to_stdout:
            sink.close()
    seconds = samples / synth.sample_rate
    took = time.perf_counter() - began
    print(f"{stream.mode} stream: first audio after {first or 0:.2f} s, {seconds:.2f} s of audio in {took:.2f} s "
          f"(real-time factor {took / max(seconds, 1e-9):.2f})", file=sys.stderr)  # fmt: skip
    if not to_stdout:
        print(absolute(args.output))


def cmd_info(args) -> None:
    from mockvox.infer.registry import model_info

    source, _ = _source(args)
    info = model_info(source.registry, args.model_id, source.cache_dir)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return
    print(f"model id:  {info['model_id']}\nversion:   {info['version']} ({info['sample_rate']} Hz)")
    print(f"epochs:    SoVITS {info['epochs'].get('sovits')}, GPT {info['epochs'].get('gpt')}")
    print(f"dataset:   {info['file_id']} @ {info['dataset_version']}")
    for reg in info["registered"]:
        print(f"registry:  models:/{reg['name']}/{reg['version']} {' '.join('@' + a for a in reg['aliases'])}")
    for key, value in sorted(info["metrics"].items()):
        print(f"  {key:32} {value:.4g}")


def cmd_models(args) -> None:
    from mockvox.infer.registry import list_models

    source, _ = _source(args)
    rows = list_models(source.registry)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['name']:48} v{row['versions']:<4} {row['latest_model_id']}")


def _synthesis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--top_k", type=int, default=15)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--repetition_penalty", type=float, default=1.35)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--split", default="cut1", choices=[f"cut{i}" for i in range(6)])
    p.add_argument("--max_tokens", type=int, default=1500, help="GPT tokens per fragment at most (25 per second)")
    p.add_argument("--sample_steps", type=int, default=32, help="v4: CFM sampling steps")
    p.add_argument("-o", "--output", default="output.wav", type=Path, help="a WAV file, or - for stdout (speak)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: conf/infer.yaml device)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16", "int8"],
                   help="bf16/fp16: reduced precision for each network where this hardware runs it fast; "
                        "int8: GPT int8 weight-only, the rest fp32")  # fmt: skip


def register_cli(sub) -> None:
    def command(name: str, func, help_: str) -> argparse.ArgumentParser:
        from mockvox.config import add_command

        return add_command(sub, name, func, help_, "conf/infer.yaml")

    p = command("inference", cmd_inference, "synthesise speech with a voice and a reference into a WAV file")
    for name in ("model_id", "ref_audio", "prompt_text", "target_text"):
        p.add_argument(name)
    p.add_argument("--promptLanguage", default="zh", choices=LANGUAGES)
    p.add_argument("--targetLanguage", default="zh", choices=LANGUAGES)
    _synthesis_options(p)
    p = command("speak", cmd_speak, "synthesise a text in a voice's own default reference into a WAV file")
    p.add_argument("model_id")
    p.add_argument("text")
    p.add_argument("--language", default=None, choices=LANGUAGES, help="of the text (default: the reference's)")
    p.add_argument(
        "--stream",
        nargs="?",
        const="token",
        default=None,
        metavar="MODE",
        help="write the audio as it is synthesised; MODE: token (default), fixed, fragment, whole",
    )
    p.add_argument("--format", default="wav", choices=["wav", "raw"],
                   help="with -o -: a WAV stream (header of unknown length) or bare 16-bit PCM")  # fmt: skip
    _synthesis_options(p)
    p = command("info", cmd_info, "show a voice's version, epochs, dataset, metrics")
    p.add_argument("model_id")
    p.add_argument("--json", action="store_true", help="print details as JSON")
    p = command("models", cmd_models, "list registered voices")
    p.add_argument("--json", action="store_true", help="print details as JSON")
