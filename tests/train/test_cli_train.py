"""``mockvox train | info | models | inference`` in-process on the sample dataset (tiny v2 from scratch)."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from mockvox.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_model(dataset):
    data_dir, file_id, _ = dataset
    common = [f"paths.data_dir={data_dir}", "logger.experiment_name=cli"]  # keys of conf/train.yaml and infer.yaml
    return data_dir, file_id, common


def test_train_prints_the_model_id_last_and_json_on_request(cli_model, capsys, tmp_path):
    data_dir, file_id, common = cli_model
    args = ["train", file_id, "--version", "v2", "model/size=tiny", "pretrained=none", "data.min_items=4",
            "name=cli-voice", "callbacks.progress=false", "evaluate=false"]  # fmt: skip
    assert main(args + common) == 0
    out = capsys.readouterr().out.strip().splitlines()
    model_id = out[-1]
    assert model_id.startswith("m-") and len(out) == 1  # progress goes to stderr
    assert main(["info", model_id, "--json", *common]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_id"] == model_id and info["epochs"] == {"sovits": 1, "gpt": 1} and info["file_id"] == file_id
    assert main(["models", "--json", *common]) == 0
    assert any(
        r["name"] == "cli-voice" and r["latest_model_id"] == model_id for r in json.loads(capsys.readouterr().out)
    )
    ref = tmp_path / "ref.wav"
    clip = sorted((data_dir / "sliced" / file_id).glob("*.wav"))[0]
    sf.write(ref, sf.read(clip)[0][: 32000 * 4], 32000)
    out_wav = tmp_path / "out.wav"
    assert main(["inference", "models:/cli-voice@latest", str(ref), "A test.", "Hello world.", "--promptLanguage",
                 "en", "--targetLanguage", "en", "--seed", "3", "-o", str(out_wav), *common]) == 0  # fmt: skip
    audio, sr = sf.read(out_wav)
    assert sr == 32000 and len(audio) > 32000 * 0.3


def test_unknown_model_and_short_reference_are_clear_errors(cli_model, capsys, tmp_path):
    data_dir, file_id, common = cli_model
    assert main(["info", "m-doesnotexist", *common]) == 2
    assert "no model 'm-doesnotexist'" in capsys.readouterr().err
    assert main(["train", "20990101000000000000.deadbeef.00000000000000000000000000000000", *common]) == 2
    assert "no dataset" in capsys.readouterr().err


def test_speak_streams_to_a_file_and_to_stdout(cli_model, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    _, _, common = cli_model
    args = ["speak", "models:/cli-voice@latest", "Hello world, this is a stream.", "--language", "en", "--seed", "4",
            "--max_tokens", "60"]  # fmt: skip
    whole, streamed = tmp_path / "whole.wav", tmp_path / "streamed.wav"
    assert main([*args, "-o", str(whole), *common]) == 0
    assert main([*args, "--stream", "-o", str(streamed), *common]) == 0  # token mode, written as chunks come
    a, sr = sf.read(whole, dtype="int16")
    b, _ = sf.read(streamed, dtype="int16")
    assert sr == 32000 and len(a) == len(b) > 32000 // 2
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 0.05 * np.abs(a.astype(int)).mean()  # the same speech
    mockvox = shutil.which("mockvox", path=str(Path(sys.executable).parent))
    run = [mockvox, *args, "--stream", "fixed", "-o", "-", *common]
    piped = subprocess.run(run, capture_output=True, timeout=600)
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert piped.stdout[:4] == b"RIFF" and piped.stdout[40:44] == b"\xff\xff\xff\xff"  # a WAV stream: size unknown
    assert b"fixed stream: first audio after" in piped.stderr
    assert len(piped.stdout) == 44 + 2 * len(a)
    raw = subprocess.run([*run, "--format", "raw"], capture_output=True, timeout=600)
    assert raw.returncode == 0 and raw.stdout == piped.stdout[44:]  # bare PCM, the same seeded samples
