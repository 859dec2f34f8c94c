"""``mockvox demo`` end to end (shortened to one epoch per stage): it ends with the evaluation table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
MOCKVOX = str(Path(sys.executable).with_name("mockvox"))


def test_the_demo_trains_speaks_and_prints_its_evaluation(tmp_path, whisper_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MOCKVOX_"))}
    env.update(MOCKVOX_ROOT=str(tmp_path), DVC_NO_ANALYTICS="1")
    args = [MOCKVOX, "demo", "epochs.sovits=1", "epochs.gpt=1", "asr.model=tiny.en", f"asr.models_dir={whisper_dir}"]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"^model id: m-[0-9a-f]{32} ", out, re.M) and (tmp_path / "data" / "output" / "demo.wav").is_file()
    table = out.split("evaluation (voice / not fine-tuned / real held-out slices):", 1)[1]
    assert re.search(r"^\s+3 H ", table, re.M), table  # 3 sentences (experiment=demo), then the held-out slice
    rows = {m[1]: [float(v) for v in m[2].split()] for m in re.finditer(r"^(eval/\w+)\s+([-\d. ]+)$", table, re.M)}
    assert {"eval/wer", "eval/speaker_sim", "eval/dnsmos", "eval/capped_share"} <= set(rows), table
    voice, floor, ceiling = rows["eval/wer"]
    assert ceiling < 0.5 < voice  # the contrast the demo shows: a from-scratch voice against real speech
    assert rows["eval/speaker_sim"][2] > rows["eval/speaker_sim"][0]
    assert "evaluate 100%" in proc.stderr  # its progress bar
