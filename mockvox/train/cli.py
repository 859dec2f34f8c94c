"""``mockvox train | resume | info | models | inference``: training and synthesis from registered voices."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

LANGUAGES = ["all_zh", "zh", "en", "all_ja", "ja", "all_ko", "ko", "all_can", "can", "all_yue", "yue", "auto",
             "auto_can"]  # fmt: skip


def _tracker(overrides: list[str]):
    from mockvox.train.config import compose_train
    from mockvox.train.tracking import Tracker

    cfg = compose_train(overrides)
    return Tracker.from_config(cfg.logger), cfg


def _cache(cfg) -> Path:
    from mockvox.train.registry import voice_cache_dir

    return voice_cache_dir(cfg)


def _report(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(f"registered {result.name} version {result.version}; epochs {result.epochs}", file=sys.stderr)
        print(result.model_id or result.voice_dir)


def cmd_train(args) -> None:
    from mockvox.train.config import compose_train
    from mockvox.train.run import train

    overrides = [f"model={args.version}", f"data.file_id={args.file_id}", f"epochs.sovits={args.epochs_sovits}",
                 f"epochs.gpt={args.epochs_gpt}"]  # fmt: skip
    if args.no_denoise:
        overrides.append("data.denoise=false")
    cfg = compose_train(overrides + args.overrides)
    with contextlib.redirect_stdout(sys.stderr):  # progress bars and logs: stdout keeps only the result
        result = train(cfg)
    _report(result, args.json)


def cmd_resume(args) -> None:
    from mockvox.train.resume import load_resume_state
    from mockvox.train.run import train

    tracker, base = _tracker(args.overrides)
    state = load_resume_state(tracker, args.model_id, _cache(base))
    cfg = OmegaConf.create(state.config)
    cfg.epochs = {"sovits": args.epochs_sovits, "gpt": args.epochs_gpt}
    cfg.resume_from = state.model_id
    cfg.logger = base.logger
    for item in args.overrides:
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, force_add=True)
    with contextlib.redirect_stdout(sys.stderr):
        result = train(cfg, resume=state)  # loaded once: train() does not download it again
    _report(result, args.json)


def cmd_info(args) -> None:
    from mockvox.train.registry import model_info

    tracker, cfg = _tracker(args.overrides)
    info = model_info(tracker, args.model_id, _cache(cfg))
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
    from mockvox.train.registry import list_models

    tracker, _ = _tracker(args.overrides)
    rows = list_models(tracker)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['name']:48} v{row['versions']:<4} {row['latest_model_id']}")


def cmd_inference(args) -> None:
    from mockvox.audio.io import write_wav
    from mockvox.infer.loading import load_voice
    from mockvox.infer.pipeline import SynthesisParams, Synthesizer
    from mockvox.progress import Bars
    from mockvox.train.registry import download_voice, resolve_model_id

    tracker, cfg = _tracker(args.overrides)
    voice_dir = download_voice(tracker, resolve_model_id(tracker, args.model_id), _cache(cfg))
    voice = load_voice(voice_dir, pretrained_dir=cfg.paths.pretrained_dir, device=args.device, precision=args.precision)
    synth = Synthesizer(voice)
    params = SynthesisParams(top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, speed=args.speed,
                             repetition_penalty=args.repetition_penalty, seed=args.seed, split=args.split)  # fmt: skip
    sr, audio = synth.synthesize(args.ref_audio, args.prompt_text, args.promptLanguage, args.target_text,
                                 args.targetLanguage, params, Bars().for_step("synthesis"))  # fmt: skip
    write_wav(args.output, audio, sr)
    print(args.output)


def register_cli(sub) -> None:
    def command(name: str, func, help_: str) -> argparse.ArgumentParser:
        note = "KEY=VALUE arguments whose key is a config group or key override conf/ (none after --)"
        p = sub.add_parser(name, help=help_, description=f"{help_}. {note}.")
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print details as JSON")
        return p

    p = command("train", cmd_train, "train a voice on a dataset (prints the model id last)")
    p.add_argument("file_id")
    p.add_argument("--version", default="v4", choices=["v2", "v4"])
    p.add_argument("--epochs_sovits", type=int, default=1)
    p.add_argument("--epochs_gpt", type=int, default=1)
    p.add_argument("--no-denoise", action="store_true", help="train on the raw slices")
    p = command("resume", cmd_resume, "train a voice N/M more epochs into a new model version")
    p.add_argument("model_id")
    p.add_argument("--epochs_sovits", type=int, default=2)
    p.add_argument("--epochs_gpt", type=int, default=2)
    p = command("info", cmd_info, "show a voice's version, epochs, dataset, metrics")
    p.add_argument("model_id")
    command("models", cmd_models, "list registered voices")
    p = command("inference", cmd_inference, "synthesise speech with a voice into a WAV file")
    for name in ("model_id", "ref_audio", "prompt_text", "target_text"):
        p.add_argument(name)
    p.add_argument("--promptLanguage", default="zh", choices=LANGUAGES)
    p.add_argument("--targetLanguage", default="zh", choices=LANGUAGES)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--top_k", type=int, default=15)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--repetition_penalty", type=float, default=1.35)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--split", default="cut1", choices=[f"cut{i}" for i in range(6)])
    p.add_argument("-o", "--output", default="output.wav", type=Path)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="bf16/fp16: reduced precision for each network where this hardware runs it fast")  # fmt: skip
