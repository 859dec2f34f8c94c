"""``mockvox evaluate MODEL_ID``: score a registered voice on a sentence list and log the results to MLflow."""

from __future__ import annotations

import argparse
import json


def _cell(value, width: int = 5) -> str:
    return f"{value:>{width}.2f}" if isinstance(value, float) else f"{'-':>{width}}"


def _triple(rows: dict, line: int, key: str) -> str:
    """voice / floor / real values of one column for one line."""
    return " ".join(_cell((rows.get((kind, line)) or {}).get(key)) for kind in ("voice", "floor", "real"))


SUMMARY_KEYS = ("{metric}", "speaker_sim", "dnsmos", "dnsmos_sig", "dnsmos_bak", "duration_ratio", "capped_share",
                "silent_share")  # fmt: skip


def format_table(result: dict) -> str:
    """Per line (sentence or held-out slice): voice / floor / real scores; then the summary on the same scale."""
    metric = result["metric"]
    rows = {(row["voice"], row["line"]): row for row in result["sentences"]}
    lines = sorted({row["line"] for row in result["sentences"]})
    head = "voice floor  real"
    titles = " | ".join(f"{title:^17}" for title in (metric.upper(), "speaker sim", "DNSMOS"))
    out = [f"{'':8} {titles} | {'ratio':>5} {'flags':<6} text", f"{'#':>4} {'set':3} {head} | {head} | {head} |"]
    for line in lines:
        voice = rows.get(("voice", line)) or {}
        flags = "".join(flag for flag, key in (("C", "capped"), ("S", "silent")) if voice.get(key)) or "-"
        text = voice.get("text", "")
        text = text if len(text) <= 40 else text[:39] + "…"
        cells = " | ".join(_triple(rows, line, key) for key in ("score", "speaker_sim", "dnsmos_ovrl"))
        kind = "H" if voice.get("set") == "holdout" else "S"
        out.append(f"{line:>4} {kind:3} {cells} | {_cell(voice.get('duration_ratio'))} {flags:<6} {text}")
    out.append(f"{'':8} (S: bundled sentence, H: held-out slice; flags C: token cap reached, S: silent)")
    out.append("")
    summary = result["summary"]
    out.append(f"{'':22} {'voice':>8} {'floor':>8} {'ceiling':>8}")
    for template in SUMMARY_KEYS:
        key = template.format(metric=metric)
        values = [summary.get(prefix + key) for prefix in ("eval/", "eval/floor/", "eval/ceiling/")]
        cells = " ".join(f"{v:>8.3f}" if isinstance(v, float) and v == v else f"{'-':>8}" for v in values)
        out.append(f"{'eval/' + key:22} {cells}")
    out.append("")
    out.append(f"{'model id':22} {result['model_id']} ({result['language']})")
    out.append(f"{'run':22} {result['run_id']}")
    for version in result["versions"]:
        out.append(f"{'registry':22} models:/{version['name']}/{version['version']}")
    return "\n".join(out)


def cmd_evaluate(args) -> None:
    from mockvox.config import compose
    from mockvox.eval.run import evaluate, read_sentences
    from mockvox.progress import Bars

    cfg = compose("eval", args.overrides)
    sentences = read_sentences(args.sentences) if args.sentences else None
    bars = Bars(not args.quiet, units={"evaluate": "clip"})
    try:
        result = evaluate(args.model_id, cfg, sentences, progress=bars.for_step("evaluate"))
    finally:
        bars.close()
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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p
