"""DVC stage ``prepare``: slice, denoise and transcribe one recording into a folder, settings from ``params.yaml``.

``params.yaml`` is the composed ``conf/prepare.yaml`` (DVC's Hydra composition writes it on ``dvc exp run``).
Usage: ``python -m mockvox.data.prepare RECORDING --language en --out data/prepared/sample``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mockvox.config import load_params
from mockvox.data.pipeline import DatasetPipeline, prepare_settings
from mockvox.data.store import DatasetStore


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording")
    parser.add_argument("--language", default="en")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--metrics", default=None, type=Path, help="write slice count and duration as JSON")
    args = parser.parse_args(argv)
    cfg = load_params(args.params)
    settings, data_dir = prepare_settings(cfg)
    pipeline = DatasetPipeline(DatasetStore(data_dir), settings)
    results = pipeline.process_to(args.recording, args.language, bool(cfg.denoise), args.out)
    if args.metrics:
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps({"slices": len(results)}, indent=2) + "\n")
    print(f"{len(results)} slices -> {args.out.resolve()}")


if __name__ == "__main__":
    from mockvox.logs import setup_logging

    setup_logging()
    main()
