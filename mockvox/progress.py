"""Progress bars on stderr, one style for every step: dataset stages, features, training epochs, synthesis."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tqdm import tqdm

BAR_FORMAT = "{desc:>10} {percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} {unit} [{elapsed}{postfix}]"


def bar(name: str, total: float | None, unit: str = "step", **kwargs) -> tqdm:
    """A tqdm bar in MockVox's style on the current ``sys.stderr``; kept on screen once closed."""
    return tqdm(total=total, desc=name, unit=unit, file=sys.stderr, bar_format=BAR_FORMAT, leave=True,
                dynamic_ncols=True, **kwargs)  # fmt: skip


class Bars:
    """``progress(stage, done, total)`` callbacks as one bar per step.

    Args:
        enabled: False: no bars (``--quiet``).
        steps: bars made of several consecutive stages, e.g. ``{"features": ("text", "features")}``: the text pass
            and the audio pass of feature extraction fill one bar (a later stage's size is guessed as the first's
            until it reports).
        units: unit shown per bar (default ``step``).
    """

    def __init__(self, enabled: bool = True, steps: dict[str, Sequence[str]] | None = None,
                 units: dict[str, str] | None = None):  # fmt: skip
        self.enabled = enabled
        self.steps = dict(steps or {})
        self.units = dict(units or {})
        self.bars: dict[str, tqdm] = {}
        self.counts: dict[str, dict[str, tuple[int, int]]] = {}

    def _step(self, stage: str) -> tuple[str, Sequence[str]]:
        for name, stages in self.steps.items():
            if stage in stages:
                return name, stages
        return stage, (stage,)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        name, stages = self._step(stage)
        counts = self.counts.setdefault(name, {})
        counts[stage] = (done, total)
        first_total = counts[next(s for s in stages if s in counts)][1]
        n = sum(counts.get(s, (0, 0))[0] for s in stages)
        size = sum(counts.get(s, (0, first_total))[1] for s in stages)
        progress = self.bars.get(name)
        if progress is None:
            progress = self.bars[name] = bar(name, size, self.units.get(name, "step"))
        progress.total = size
        progress.update(n - progress.n)
        if stage == stages[-1] and done >= total:
            progress.close()
            self.bars.pop(name)
            self.counts.pop(name)

    def close(self) -> None:
        """Close the bars still open (a step that failed)."""
        for progress in self.bars.values():
            progress.close()
        self.bars.clear()
        self.counts.clear()

    def for_step(self, name: str):
        """A ``progress(done, total)`` callback (synthesis fragments) filling the bar ``name``."""
        return lambda done, total: self(name, done, total)
