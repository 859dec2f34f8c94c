"""``python -m mockvox.train model=v2|v4 data.file_id=<id> [overrides]`` (``-m`` for sweeps).

Prints the model id (MLflow) as the last line; with a sweeper, returns ``optimized_metric`` from each job.
"""

from __future__ import annotations

import contextlib
import json
import sys

import hydra
from omegaconf import DictConfig

from mockvox.train.config import expand_shorthands


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mockvox.train.run import train

    with contextlib.redirect_stdout(sys.stderr):  # progress bars: stdout keeps only the model id
        result = train(cfg)
    print(json.dumps(result.as_dict(), indent=2, default=str), file=sys.stderr)
    print(result.model_id or result.voice_dir or "debug run: nothing registered")
    if cfg.get("optimized_metric"):
        return result.metrics[cfg.optimized_metric]
    return None


if __name__ == "__main__":
    sys.argv[1:] = expand_shorthands(sys.argv[1:])
    main()
