"""The ``mockvox`` CLI end to end on the bundled sample, as a user runs it (a real subprocess)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SAMPLES


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
