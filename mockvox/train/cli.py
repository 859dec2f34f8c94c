"""``mockvox train | resume``: training a voice on a dataset, and more epochs for a registered one."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def _tracker(overrides: list[str]):
    from mockvox.train.config import compose_train
    from mockvox.train.tracking import Tracker

    cfg = compose_train(overrides)
    return Tracker.from_config(cfg.logger), cfg


def _cache(cfg) -> Path:
    from mockvox.infer.registry import voice_cache_dir

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
    from mockvox.train.resume import load_resume_state, resume_config
    from mockvox.train.run import train

    tracker, base = _tracker(args.overrides)
    state = load_resume_state(tracker, args.model_id, _cache(base))
    cfg = resume_config(state, base, args.epochs_sovits, args.epochs_gpt, args.overrides)
    with contextlib.redirect_stdout(sys.stderr):
        result = train(cfg, resume=state)  # loaded once: train() does not download it again
    _report(result, args.json)


def register_cli(sub) -> None:
    def command(name: str, func, help_: str) -> argparse.ArgumentParser:
        from mockvox.config import add_command

        p = add_command(sub, name, func, help_, "conf/train.yaml")
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
