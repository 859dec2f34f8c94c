"""What a person sees: the real ``mockvox`` command in a subprocess, its stdout and stderr as printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# Text of the noise this console once had: Lightning's tips and device lines, MLflow's registry prints, the warnings
# of causes fixed in MockVox (pyfunc type hints, pickled model, no input example or one that fails, eval-mode
# modules, val loop, implicit weights_only) and Lightning's own progress bar.
NOISE = ("Tip:", "GPU available", "TPU available", "Successfully registered", "Created version", "UserWarning",
         "FutureWarning", "type hints", "CloudPickle", "input_example", "eval mode", "validation_step", "weights_only",
         "LeafSpec", "serving input", "v_num", "it/s")  # fmt: skip


def _mockvox(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``mockvox ARGS``; stdout and stderr decoded as printed (``\r`` kept: text mode would make it ``\n``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(REPO), DVC_NO_ANALYTICS="1")
    cmd = [sys.executable, "-c", "import sys; from mockvox.cli import main; sys.exit(main())", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=900)
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def _screen(stderr: str) -> list[str]:
    """The lines left on a terminal: the last state of each ``\\r``-rewritten line."""
    lines = [next((s for s in reversed(line.split("\r")) if s.strip()), "") for line in stderr.split("\n")]
    return [line.rstrip() for line in lines if line.strip()]


def test_training_console_shows_bars_and_results_only(dataset, tmp_path):
    data_dir, file_id, _ = dataset
    proc = _mockvox("train", file_id, "--version", "v2", "experiment=demo", "data.min_items=4",
                    "name=console-voice", f"paths.data_dir={data_dir}", "logger.experiment_name=console",
                    cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (model_id,) = proc.stdout.split()  # stdout: the model id only
    screen = _screen(proc.stderr)
    assert [n for n in NOISE if n in proc.stderr] == []
    assert len(screen) == len(set(screen)), screen  # no line twice
    bars = {line.split()[0]: line for line in screen if "%|" in line}
    assert {"sovits", "gpt"} <= set(bars) and all("100%" in bar for bar in bars.values()), screen
    assert "epoch 1/1, loss_g=" in bars["sovits"] and ", loss=" in bars["gpt"]
    assert screen[-1] == "registered console-voice version 1; epochs {'sovits': 1, 'gpt': 1}"
    assert len(screen) <= len(bars) + 2, screen
    assert model_id.startswith("m-")


@pytest.mark.parametrize("options", [[], ["-v"], ["--log-level", "DEBUG"], ["models", "-v"]])
def test_verbose_options_show_library_info_lines(options, tmp_path):
    args = options if "models" in options else [*options, "models"]
    proc = _mockvox(*args, f"paths.data_dir={tmp_path / 'data'}", cwd=tmp_path)  # a new store: MLflow logs INFO
    assert proc.returncode == 0, proc.stderr[-3000:]
    created = "INFO mlflow.store.db.utils: Creating initial MLflow database tables..."
    if options:
        assert created in proc.stderr.splitlines()
        assert ("DEBUG hydra" in proc.stderr) == ("DEBUG" in options)
        assert "sqlalchemy" not in proc.stderr  # SQL echo stays off
    else:
        assert proc.stderr == ""
