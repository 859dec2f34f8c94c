"""``eval/summary.png``: one bar chart per metric, a group of bars per text (the voice, the floor, the real slice)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

STYLES = (("voice", "the voice", "#1f77b4"), ("floor", "not fine-tuned (floor)", "#bbbbbb"),
         ("real", "real slice (ceiling)", "#2ca02c"))  # fmt: skip


def _panels(metric: str) -> list[tuple[str, str]]:
    return [
        ("score", f"{metric.upper()} (lower is better)"),
        ("speaker_sim", "speaker similarity (higher is better)"),
        ("dnsmos_ovrl", "DNSMOS overall, 1-5 (higher is better)"),
        ("duration_ratio", "duration ratio (1 = on pace)"),
    ]


def write_chart(rows: Sequence[dict], metric: str, path: str | Path, title: str) -> Path:
    """Draw the rows of an evaluation (``voice`` / ``floor`` / ``real``, by ``line``) into a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    lines = sorted({row["line"] for row in rows})
    labels = {row["line"]: (row["set"][0].upper() + str(row["line"])) for row in rows}  # S0.., H3..
    kinds = [kind for kind in STYLES if any(row["voice"] == kind[0] for row in rows)]
    width = 0.8 / max(len(kinds), 1)
    panels = _panels(metric)
    fig = Figure(figsize=(max(6.0, 0.6 * len(lines) + 2), 2.4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    x = np.arange(len(lines))
    for ax, (column, name) in zip(axes, panels, strict=True):
        for k, (kind, label, colour) in enumerate(kinds):
            value = {row["line"]: row[column] for row in rows if row["voice"] == kind}
            heights = [np.nan if value.get(line) is None else value[line] for line in lines]
            ax.bar(x + (k - (len(kinds) - 1) / 2) * width, heights, width, label=label, color=colour)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_xticks(x, [labels[line] for line in lines], fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        if column == "duration_ratio":
            ax.axhline(1.0, color="black", linewidth=0.6)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, ncols=len(kinds), loc="outside lower center")
    fig.suptitle(f"{title}\nS: bundled sentence, H: held-out slice's text", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
