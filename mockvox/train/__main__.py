"""``python -m mockvox.train model=v2|v4 data.file_id=<id> [overrides]`` (``-m`` for sweeps).

Prints the model id (MLflow) as the last line; with a sweeper, returns ``optimized_metric`` from each job. Logging is
:mod:`mockvox.logs`' (Hydra's is off in ``conf/train.yaml``): ``hydra.verbose=true`` shows every DEBUG line,
``hydra.verbose=[NAME,...]`` those of the named loggers.
"""

from __future__ import annotations

import contextlib
import json
import sys

import hydra
from omegaconf import DictConfig

from mockvox.logs import set_level, setup_logging


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from mockvox.train.run import train

    verbose = HydraConfig.get().verbose
    setup_logging("DEBUG" if verbose is True else None)
    for name in [] if isinstance(verbose, bool) else [verbose] if isinstance(verbose, str) else verbose:
        set_level(name, "DEBUG")
    with contextlib.redirect_stdout(sys.stderr):  # progress bars: stdout keeps only the model id
        result = train(cfg)
    print(json.dumps(result.as_dict(), indent=2, default=str), file=sys.stderr)
    print(result.model_id or result.voice_dir or "debug run: nothing registered")
    if cfg.get("optimized_metric"):
        return objective(result, cfg.optimized_metric)
    return None


def objective(result, name: str) -> float:
    """The metric a sweeper minimises or maximises; a clear error when the training did not produce it."""
    if name in result.metrics:
        return float(result.metrics[name])
    why = ""
    if name.startswith("eval/"):
        error = (result.evaluation or {}).get("error")
        why = f" (the evaluation failed: {error})" if error else " (run with evaluate=true)"
    known = ", ".join(sorted(result.metrics)) or "none"
    raise KeyError(f"the objective {name!r} is not among the training's metrics{why}; known: {known}")


if __name__ == "__main__":
    setup_logging()  # before Hydra composes: its warnings go through the same handler
    main()
