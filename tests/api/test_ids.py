"""Every id an endpoint takes (path, query, form and JSON fields) is checked against its format before it reaches a
path or a store: traversals, absolute paths, globs, NUL and over-long values get a 4xx naming the parameter, and
nothing under the data root is created, changed or deleted."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import soundfile as sf

FILE_ID = "20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938"  # well formed, never issued
MODEL_ID = "m-" + "0" * 32
TASK_ID = "00000000-0000-4000-8000-000000000000"
BAD = ["../", "../../etc/passwd", "/etc/passwd", "*", "?", "[a]", "a\x00b", "x" * 5000, "../decoy", "..\\decoy",
       f"{FILE_ID}/../../decoy", f"../{FILE_ID}", f"{TASK_ID}/..", f"{MODEL_ID}/../..", "models:/../../etc/passwd",
       f"{FILE_ID}*", f"{TASK_ID}?", f"{MODEL_ID}\x00"]  # fmt: skip
# written by the service whatever the request: task records, Celery's broker and results, MLflow, logs, worker pids
VOLATILE = re.compile(r"^(api/(records|broker|results)\.db|mlflow\.db)(-wal|-shm|-journal)?$|\.log$|^api/workers\.pid$")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file under ``root`` with its size and mtime, every folder by name (the service's own stores left out)."""
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if VOLATILE.search(rel):
            continue
        found[rel] = ("dir",) if path.is_dir() else (path.stat().st_size, path.stat().st_mtime_ns)
    return found


def wav(seconds: float = 1.0) -> bytes:
    """A decodable recording the service would accept."""
    buf = io.BytesIO()
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def in_path(template: str) -> Callable[[str], str]:
    """``template`` with the value percent-encoded (httpx would resolve a bare ``../``)."""
    return lambda value: template.format(quote(value, safe=""))


Send = Callable[[httpx.Client, str], httpx.Response]
SYNTH = {"target_text": "hello", "target_language": "en"}
ENDPOINTS: dict[str, tuple[str, Send]] = {  # the parameter the answer must name, and the request carrying the value
    "POST /add file_id (multipart)": ("file_id", lambda c, v: c.post(
        "/add", data={"file_id": v}, files={"file": ("take.wav", wav(), "audio/wav")})),
    "POST /revision file_id (json)": ("file_id", lambda c, v: c.post("/revision", json={"file_id": v, "results": []})),
    "POST /revision file_id (urlencoded)": ("file_id", lambda c, v: c.post(
        "/revision", data={"file_id": v, "results": "[]"})),
    "POST /train file_id (json)": ("file_id", lambda c, v: c.post("/train", json={"file_id": v, "version": "v2"})),
    "POST /train file_id (multipart)": ("file_id", lambda c, v: c.post(
        "/train", files={"file_id": (None, v), "version": (None, "v2")})),
    "GET /datasets/{file_id}": ("file_id", lambda c, v: c.get(in_path("/datasets/{}")(v))),
    "POST /resume model_id (json)": ("model_id", lambda c, v: c.post("/resume", json={"model_id": v})),
    "POST /resume model_id (urlencoded)": ("model_id", lambda c, v: c.post("/resume", data={"model_id": v})),
    "POST /inference model_id (json)": ("model_id", lambda c, v: c.post(
        "/inference", json={"model_id": v, **SYNTH})),
    "POST /inference model_id (multipart)": ("model_id", lambda c, v: c.post(
        "/inference", files={"model_id": (None, v), **{k: (None, x) for k, x in SYNTH.items()}})),
    "POST /inference ref_audio_file_id (json)": ("ref_audio_file_id", lambda c, v: c.post(
        "/inference", json={"model_id": MODEL_ID, "ref_audio_file_id": v, **SYNTH})),
    "POST /inference ref_audio_file_id (urlencoded)": ("ref_audio_file_id", lambda c, v: c.post(
        "/inference", data={"model_id": MODEL_ID, "ref_audio_file_id": v, **SYNTH})),
    "GET /streamInference model_id": ("model_id", lambda c, v: c.get(
        "/streamInference", params={"model_id": v, **SYNTH})),
    "GET /streamInference ref_audio_file_id": ("ref_audio_file_id", lambda c, v: c.get(
        "/streamInference", params={"model_id": MODEL_ID, "ref_audio_file_id": v, **SYNTH})),
    "GET /model/{model_id}": ("model_id", lambda c, v: c.get(in_path("/model/{}")(v))),
    "DELETE /model/{model_id}": ("model_id", lambda c, v: c.delete(in_path("/model/{}")(v))),
    "GET /refs/{ref_id}": ("ref_id", lambda c, v: c.get(in_path("/refs/{}")(v))),
    "DELETE /refs/{ref_id}": ("ref_id", lambda c, v: c.delete(in_path("/refs/{}")(v))),
    "GET /tasks/{task_id}": ("task_id", lambda c, v: c.get(in_path("/tasks/{}")(v))),
    "DELETE /tasks/{task_id}": ("task_id", lambda c, v: c.delete(in_path("/tasks/{}")(v))),
    "GET /output/{task_id}": ("task_id", lambda c, v: c.get(in_path("/output/{}")(v))),
}  # fmt: skip


@pytest.fixture(scope="module")
def planted(server, client, ref_clip) -> Iterator[list[str]]:
    """Files a traversal would reach (decoys in the data root and the service's folder, a real reference) and the
    bad values aimed at them."""
    decoys = [server.data / "decoy.json", server.data / "decoy.wav", server.data / "api" / "decoy.json",
              server.data / "api" / "decoy.wav"]  # fmt: skip
    for path in decoys:
        path.write_text("{}")
    ref = client.post("/uploadRef", files={"file": ("ref.wav", ref_clip.read_bytes(), "audio/wav")},
                      data={"text": "a reference", "language": "en"})  # fmt: skip
    assert ref.status_code == 200, ref.text
    ref_id = ref.json()["file_id"]
    yield [*BAD, f"{ref_id}/../{ref_id}", f"../refs/{ref_id}", f"../api/refs/{ref_id}", f"{ref_id}.json", f"{ref_id}*"]
    assert client.get(f"/refs/{ref_id}").json()["file_id"] == ref_id  # still there, and a good id still works
    assert client.delete(f"/refs/{ref_id}").status_code == 200
    for path in decoys:
        path.unlink(missing_ok=True)


def check_rejected(response: httpx.Response, name: str, value: str) -> None:
    """A 4xx with the error body, its detail naming the parameter."""
    shown = f"{value[:40]!r} ({len(value)} chars)"
    assert 400 <= response.status_code < 500, f"{name}={shown}: {response.status_code} {response.text[:300]}"
    body = response.json()
    assert set(body) == {"detail", "code", "status"} and body["status"] == response.status_code, body
    assert name in body["detail"], f"{name}={shown}: {body}"


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_an_id_in_the_wrong_format_is_refused_and_touches_no_file(endpoint, server, client, planted) -> None:
    name, send = ENDPOINTS[endpoint]
    before = snapshot(server.data)
    assert {"decoy.json", "api/decoy.wav"} <= before.keys() and any(k.startswith("api/refs/") for k in before)
    for value in planted:
        check_rejected(send(client, value), name, value)
    after = snapshot(server.data)
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"{endpoint} changed files under the data root: {changed}"


def test_bad_ids_are_422_with_the_format_named(client, planted) -> None:
    """Not merely some 4xx: the id check answers (422, ``invalid``) and says what an id looks like."""
    for path, hint in (("/tasks/{}", "UUID"), ("/refs/{}", "YYYYmmddHHMMSSffffff"), ("/model/{}", "m-<32 hex>")):
        for value in planted:
            body = client.get(in_path(path)(value), headers={"Accept-Language": "en"}).json()
            assert body["status"] == 422 and body["code"] == "invalid" and hint in body["detail"], (value[:40], body)


def test_messages_are_chinese_by_default_and_english_on_request(client) -> None:
    url = in_path("/tasks/{}")("../../etc/passwd")
    zh = client.get(url).json()["detail"]
    assert zh.startswith("参数 task_id 无效"), zh
    assert client.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9"}).json()["detail"] == zh
    for header in ("en", "en-US,en;q=0.9", "fr;q=1.0, en;q=0.5"):
        en = client.get(url, headers={"Accept-Language": header}).json()["detail"]
        assert en.startswith("invalid parameter task_id: task id '../../etc/passwd'"), (header, en)
    missing = client.get(f"/tasks/{TASK_ID}", headers={"Accept-Language": "en"}).json()
    assert missing == {"detail": f"task not found: {TASK_ID}", "code": "task_not_found", "status": 404}
    assert client.get(f"/tasks/{TASK_ID}").json()["detail"] == f"任务不存在: {TASK_ID}"
