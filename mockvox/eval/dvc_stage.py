"""DVC stage ``evaluate``: the voice the ``train`` stage registered, evaluated with params.yaml's settings.

Usage: ``python -m mockvox.eval.dvc_stage --train data/dvc_stages/train.json --metrics data/dvc_stages/eval.json``
(the train stage's JSON names the model id; the metrics file holds the ``eval/*`` summary DVC reads as metrics).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from mockvox.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="the train stage's metrics JSON (its model_id)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--metrics", type=Path, required=True, help="where the evaluation's summary goes (JSON)")
    args = parser.parse_args(argv)
    model_id = json.loads(args.train.read_text(encoding="utf-8")).get("model_id")
    if not model_id:
        raise SystemExit(f"{args.train} names no model_id: the train stage registered no voice")
    from mockvox.eval.run import evaluate

    result = evaluate(model_id, load_params(args.params))
    summary = {key: (value if math.isfinite(value) else None) for key, value in result["summary"].items()}
    out = {"model_id": model_id, "language": result["language"], "metric": result["metric"], **summary}
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.metrics.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.metrics)
    print(json.dumps(out))


if __name__ == "__main__":
    from mockvox.logs import setup_logging

    setup_logging()
    main()
