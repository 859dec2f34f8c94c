"""``mockvox evaluate MODEL_ID``: score a registered voice on a sentence list and log the results to MLflow."""

from __future__ import annotations

import argparse
import json


def _cell(value, width: int = 6) -> str:
    return f"{value:<{width}.3f}" if isinstance(value, float) else f"{'-':<{width}}"


def format_table(result: dict) -> str:
    """Per-sentence scores, then the summary and where the results were logged."""
    metric = result["metric"]
    lines = [f"{'#':>3}  {metric:<6} {'sim':<6} {'dnsmos':<6} {'ratio':<6} {'flags':<13} text"]
    for row in result["sentences"]:
        flags = " ".join(name for name in ("capped", "silent") if row[name]) or "-"
        cells = " ".join(_cell(row[key]) for key in ("score", "speaker_sim", "dnsmos_ovrl", "duration_ratio"))
        text = row["text"] if len(row["text"]) <= 48 else row["text"][:47] + "…"
        lines.append(f"{row['index']:>3}  {cells} {flags:<13} {text}")
    lines.append("")
    lines += [f"{key:22} {value:.4f}" for key, value in result["summary"].items()]
    lines.append(f"{'model id':22} {result['model_id']} ({result['language']})")
    lines.append(f"{'run':22} {result['run_id']}")
    for version in result["versions"]:
        lines.append(f"{'registry':22} models:/{version['name']}/{version['version']}")
    return "\n".join(lines)


def cmd_evaluate(args) -> None:
    from mockvox.config import compose
    from mockvox.eval.run import evaluate, read_sentences

    cfg = compose("eval", args.overrides)
    sentences = read_sentences(args.sentences) if args.sentences else None
    result = evaluate(args.model_id, cfg, sentences)
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str) if args.json else format_table(result))


def register_cli(sub) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the ``mockvox`` subcommands."""
    from mockvox.config import add_command

    p = add_command(sub, "evaluate", cmd_evaluate, "synthesise a sentence list with a voice, score it, log to MLflow",
                    "conf/eval.yaml")  # fmt: skip
    p.add_argument("model_id", help="MLflow model id (m-…), models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("--sentences", default=None, metavar="FILE",
                   help="one sentence a line (default: the bundled list of the voice's language)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the summary and every sentence's scores as JSON")
    return p
