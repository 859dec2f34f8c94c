"""Requests as an attacker sends them, against the app in-process (litestar.testing; Celery's sqlite broker, MLflow
and the records are real, no worker runs): config interpolation in overrides, other tenants' ids, stored failures
that cannot print themselves, cancelled uploads, a locked broker, a held dataset, huge forms, server paths."""

from __future__ import annotations

import io
import sqlite3
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from litestar.testing import TestClient

from api.access import OWNER_TAG, key_owner
from api.app import create_app
from api.settings import load_settings

K1, K2, K3, ADMIN = "k1-secret-key", "k2-secret-key", "k3-secret-key", "admin-secret-key"
H1, H2, H3, HA = ({"Authorization": f"Bearer {k}"} for k in (K1, K2, K3, ADMIN))
UNKNOWN_FILE = "20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938"
UNKNOWN_MODEL = "m-0123456789abcdef0123456789abcdef"


def _wav(seconds: float = 5.0, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, monkeypatch_module):
    data = tmp_path_factory.mktemp("hostile") / "data"
    monkeypatch_module.setenv("MOCKVOX_API_KEYS", f"{K1},{K2},{K3}")
    monkeypatch_module.setenv("MOCKVOX_CALLBACK_SECRET", "cb-secret-value")
    settings = load_settings([f"paths.data_dir={data}", "experiment=demo", "limits.queued_per_key=3"],
                             admin_keys=(ADMIN,))  # fmt: skip
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, timeout=120) as client:
        yield app, client


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _secrets_absent(text: str) -> None:
    for secret in (K1, K2, K3, ADMIN, "cb-secret-value"):
        assert secret not in text


def _no_server_detail(app, text: str) -> None:
    settings = app.state.settings
    for leak in (str(settings.state_dir), str(settings.data_dir), "sqlite:///", "file:///", "[SQL", "/tmp/"):
        assert leak not in text, text
    _secrets_absent(text)


HOSTILE_VALUES = ("${oc.env:MOCKVOX_API_KEYS}", "${oc.env:MOCKVOX_CALLBACK_SECRET,x}", "${oc.decode:'[1, 2]'}",
                  "[1,${oc.env:MOCKVOX_API_KEYS}]", "${paths.data_dir}", "${oc.env:HOME}", "\\${x}", "1${x}",
                  "{a: ${oc.env:MOCKVOX_API_KEYS}}", "null${oc.env:HOME}")  # fmt: skip


@pytest.mark.parametrize("route", ["/train", "/resume"])
def test_no_override_value_reaches_a_resolver(app_client, route) -> None:
    app, client = app_client
    ids = {"file_id": UNKNOWN_FILE} if route == "/train" else {"model_id": UNKNOWN_MODEL}
    for key in app.state.settings.train_allow:
        for value in HOSTILE_VALUES:
            for overrides in ([f"{key}={value}"], {key: value}):
                r = client.post(route, json={**ids, "overrides": overrides}, headers=H1)
                assert r.status_code == 422 and "overrides" in r.json()["detail"], (key, value, r.text)
                _secrets_absent(r.text)
    for bad in (["+seed=1"], ["~seed"], ["hydra.run.dir=/x"], ["paths.data_dir=/"], ["seed=1", "seed=2"], "seed=1"):
        r = client.post(route, json={**ids, "overrides": bad}, headers=H1)
        assert r.status_code == 422, (bad, r.text)


def test_accepted_overrides_are_rewritten_typed() -> None:
    from api.overrides import checked_overrides
    from mockvox.train.config import compose_train

    allow = load_settings(["paths.data_dir=/nonexistent"]).train_allow
    given = ["seed=007", "evaluation.limit=null", "data.holdout=.25", "evaluate=yes", "pretrained=none"]
    written = checked_overrides(given, allow)
    assert written == ["seed=7", "evaluation.limit=null", "data.holdout=0.25", "evaluate=true", "pretrained=none"]
    assert checked_overrides({"seed": 3, "evaluation.floor": False}, allow) == ["seed=3", "evaluation.floor=false"]
    cfg = compose_train(["experiment=demo", *written])
    assert cfg.seed == 7 and cfg.evaluation.limit is None and cfg.data.holdout == 0.25


def test_a_stored_failure_that_cannot_print_itself_is_readable(app_client) -> None:
    app, client = app_client
    r = client.post("/upload", files={"file": ("a.wav", _wav())}, data={"language": "en"}, headers=H1)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    try:
        np.zeros((2**46,), dtype=np.float64)
    except MemoryError as exc:  # numpy's _ArrayMemoryError: rebuilt from its stored arguments it cannot print
        app.state.services.celery.backend.mark_as_failure(task_id, exc)
    app.state.services.records.finish(task_id)
    for _ in range(2):  # also after the answer was cached
        status = client.get(f"/tasks/{task_id}", headers=H1)
        assert status.status_code == 200 and status.json()["status"] == "FAILURE", status.text
        assert "memory" in status.json()["error"]
        assert client.delete(f"/tasks/{task_id}", headers=H1).status_code == 200


def _logged_voice(app, owner_key: str) -> str:
    client = app.state.services.registry.client
    experiment = client.get_experiment_by_name("mockvox") or client.get_experiment(client.create_experiment("mockvox"))
    model = client.create_logged_model(experiment.experiment_id, name="voice", tags={OWNER_TAG: key_owner(owner_key)})
    return model.model_id


def test_two_tenants_never_see_each_others_data(app_client) -> None:
    app, client = app_client
    ref = client.post("/uploadRef", files={"file": ("r.wav", _wav())}, data={"text": "hi", "language": "en"},
                      headers=H1).json()["file_id"]  # fmt: skip
    queued = client.post("/upload", files={"file": ("a.wav", _wav())}, data={"language": "en"}, headers=H1).json()
    task, dataset = queued["task_id"], queued["file_id"]
    voice = _logged_voice(app, K1)
    foreign = [
        ("GET", f"/refs/{ref}", {}), ("DELETE", f"/refs/{ref}", {}), ("GET", f"/tasks/{task}", {}),
        ("DELETE", f"/tasks/{task}", {}), ("GET", f"/output/{task}", {}), ("GET", f"/datasets/{dataset}", {}),
        ("POST", "/add", {"files": {"file": ("b.wav", _wav())}, "data": {"file_id": dataset}}),
        ("POST", "/revision", {"json": {"file_id": dataset, "results": []}}),
        ("POST", "/train", {"json": {"file_id": dataset}}), ("GET", f"/model/{voice}", {}),
        ("POST", "/resume", {"json": {"model_id": voice}}), ("DELETE", f"/model/{voice}", {}),
        ("POST", "/inference", {"json": {"model_id": voice, "target_text": "hi"}}),
        ("POST", "/inference", {"json": {"model_id": voice, "ref_audio_file_id": ref, "target_text": "hi"}}),
        ("GET", "/streamInference", {"params": {"model_id": voice, "target_text": "hi"}}),
        ("POST", "/v1/audio/speech", {"json": {"model": voice, "voice": voice, "input": "hi"}}),
        ("DELETE", f"/v1/audio/voices/{ref}", {}),
    ]  # fmt: skip
    for method, path, kwargs in foreign:
        r = client.request(method, path, headers=H2, **kwargs)
        assert r.status_code == 404, (method, path, r.text)  # as an unknown id: nothing confirms it exists
    theirs = client.get("/refs", headers=H2).json()
    assert ref not in str(theirs) and theirs["total"] == 0
    assert voice not in str(client.get("/models", headers=H2).json())
    assert voice not in str(client.get("/v1/models", headers=H2).json())
    assert ref not in str(client.get("/v1/audio/voices", headers=H2).json())
    err = client.post("/v1/audio/speech", json={"model": voice, "voice": ref, "input": "hi"}, headers=H2).json()
    assert err["error"]["code"] == "model_not_found" and err["error"]["param"] == "model"  # OpenAI's shape on /v1
    # the owner and the admin see them; nothing was deleted by the other tenant
    for headers in (H1, HA):
        assert client.get(f"/refs/{ref}", headers=headers).status_code == 200
        assert client.get(f"/tasks/{task}", headers=headers).status_code == 200
        assert voice in str(client.get("/models", headers=headers).json())
    assert ref in str(client.get("/refs", headers=H1).json())
    assert client.get(f"/refs/{ref}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.delete(f"/tasks/{task}", headers=H1).json()["status"] == "REVOKED"


def test_a_cancelled_upload_removes_its_spool_and_only_then_frees_its_slot(app_client) -> None:
    app, client = app_client
    spool = app.state.settings.uploads_dir
    before = set(spool.iterdir())
    tasks = []
    for _ in range(3):  # limits.queued_per_key=3
        r = client.post("/upload", files={"file": ("a.wav", _wav())}, data={"language": "en"}, headers=H3)
        assert r.status_code == 200, r.text
        tasks.append(r.json()["task_id"])
    assert len(set(spool.iterdir()) - before) == 3
    assert client.post("/upload", files={"file": ("a.wav", _wav())}, headers=H3).status_code == 429
    assert client.delete(f"/tasks/{tasks[0]}", headers=H3).json()["status"] == "REVOKED"
    assert len(set(spool.iterdir()) - before) == 2  # its upload is gone with it
    r = client.post("/upload", files={"file": ("a.wav", _wav())}, data={"language": "en"}, headers=H3)
    assert r.status_code == 200, r.text
    for task in [*tasks[1:], r.json()["task_id"]]:
        client.delete(f"/tasks/{task}", headers=H3)
    assert set(spool.iterdir()) == before


def _timed_health(client, results: list, stop: threading.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        r = client.get("/health/live")
        health = client.get("/health")
        results.append((time.monotonic() - started, r.status_code, health.status_code))
        time.sleep(0.05)


def _while_probing(client, fn):
    """``fn()``'s result, and the slowest pair of /health/live + /health answers while it ran."""
    results, stop = [], threading.Event()
    probe = threading.Thread(target=_timed_health, args=(client, results, stop))
    probe.start()
    try:
        out = fn()
    finally:
        stop.set()
        probe.join()
    assert results and all(live == 200 for _, live, _ in results)
    return out, max(t for t, _, _ in results)


def test_a_locked_broker_gives_503_and_nothing_is_recorded(app_client) -> None:
    app, client = app_client
    broker = sqlite3.connect(app.state.settings.state_dir / "broker.db", timeout=1)
    spool = app.state.settings.uploads_dir
    before = set(spool.iterdir())
    records = app.state.services.records
    with records.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM tasks").scalar_one()
    broker.execute("BEGIN EXCLUSIVE")
    try:
        r, slowest = _while_probing(client, lambda: client.post(
            "/upload", files={"file": ("a.wav", _wav())}, data={"language": "en"}, headers=H3))  # fmt: skip
    finally:
        broker.rollback()
        broker.close()
    assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
    _no_server_detail(app, r.text)
    assert slowest < 0.5, f"/health took {slowest:.2f} s while the broker was locked"
    with records.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM tasks").scalar_one() == count
    assert set(spool.iterdir()) == before


def test_a_huge_form_is_parsed_off_the_event_loop_and_not_echoed(app_client) -> None:
    _, client = app_client
    body = "&".join(f"field{i:07d}=x" for i in range(300_000)).encode()[: 4 << 20]
    headers = {**H1, "Content-Type": "application/x-www-form-urlencoded"}
    r, slowest = _while_probing(client, lambda: client.post("/revision", content=body, headers=headers))
    assert r.status_code in (400, 413) and len(r.content) < 2000, r.text[:300]
    assert slowest < 0.5, f"/health took {slowest:.2f} s while a form was parsed"
    many = "&".join(f"f{i}=x" for i in range(60)) + "&file_id=" + UNKNOWN_FILE
    r = client.post("/revision", content=many.encode(), headers=headers)
    assert r.status_code == 422 and len(r.content) < 1000, r.text


@pytest.fixture(scope="module")
def owned_dataset(app_client):
    """A real dataset (5 s of the sample speaker through slicing and ASR) of key 1."""
    from tests.conftest import SAMPLES

    app, _ = app_client
    audio, sr = sf.read(SAMPLES / "voice_en.ogg", dtype="float32")
    clip = app.state.settings.state_dir / "clip.wav"
    sf.write(clip, audio[: 6 * sr], sr)
    result = app.state.services.pipeline.upload(clip, "en", False)
    app.state.services.records.own("dataset", result.file_id, key_owner(K1))
    return result


def test_a_held_dataset_answers_busy_at_once_and_keeps_its_text(app_client, owned_dataset) -> None:
    app, client = app_client
    file_id, key = owned_dataset.file_id, owned_dataset.results[0]["key"]
    before = client.get(f"/datasets/{file_id}", headers=H1).json()
    with app.state.services.pipeline.locked(file_id):  # a long /add holds it
        started = time.monotonic()
        r, slowest = _while_probing(client, lambda: client.post("/revision", headers=H1, json={
            "file_id": file_id, "results": [{"key": key, "text": "changed while busy"}]}))  # fmt: skip
        waited = time.monotonic() - started
    assert r.status_code == 409 and r.json()["code"] == "busy", r.text
    assert waited < app.state.settings.limits.lock_wait_s + 3 and slowest < 0.5
    after = client.get(f"/datasets/{file_id}", headers=H1).json()
    assert after["version"] == before["version"] and "changed while busy" not in str(after)
    r = client.post("/revision", headers=H1, json={"file_id": file_id, "results": [{"key": key, "text": "now"}]})
    assert r.status_code == 200 and r.json()["version"] != before["version"], r.text


def test_errors_carry_no_server_paths_uris_sql_or_secrets(app_client) -> None:
    app, client = app_client
    answers = [
        client.post("/uploadRef", files={"file": ("r.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")}, headers=H1),
        client.post("/uploadRef", files={"file": ("r.flac", b"fLaC" + b"\x00" * 60)}, headers=H1),
        client.post("/upload", files={"file": ("a.mp3", b"\xff\xfb" + b"\x00" * 500)}, headers=H1),
        client.get(f"/model/{UNKNOWN_MODEL}", headers=H1),
        client.get("/model/models:/voice-x@champion", headers=H1),
        client.post("/inference", json={"model_id": UNKNOWN_MODEL, "target_text": "hi"}, headers=H1),
        client.get("/models", params={"page_token": "eyJ4IjogMX0="}, headers=H1),
        client.post(
            "/upload", files={"file": ("a.wav", _wav())}, data={"callback_url": "http://127.0.0.1/x"}, headers=H1
        ),  # fmt: skip
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, r.text
        _no_server_detail(app, r.text)
        assert "{name}" not in r.text and "{" not in r.json()["detail"], r.text


def _peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as fh:  # resets VmHWM, the peak resident size
        fh.write("5")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, bytes]:
    """Small files whose headers promise far more audio than a request may cost."""
    from tests.audio.test_probe import _flac_with_total, _wav_patched, _write_blocks

    folder = tmp_path_factory.mktemp("bombs")
    return {
        "liar.flac": _flac_with_total(folder, 2**36 - 1).read_bytes(),  # 76 bytes declaring 2^36 samples
        "eight.flac": _write_blocks(folder / "eight.flac", 0.2, 48000, 8, 20).read_bytes(),
        "constant.flac": _write_blocks(folder / "constant.flac", 0.2, 48000, 1, 120).read_bytes(),
        "slow.wav": _wav_patched(folder, "slow.wav", rate=1).read_bytes(),
        "fast.wav": _wav_patched(folder, "fast.wav", rate=655360).read_bytes(),
    }


def test_decoding_bombs_are_refused_from_their_headers_in_bounded_memory(app_client, owned_dataset, bombs) -> None:
    app, client = app_client
    spool = app.state.settings.uploads_dir
    before = set(spool.iterdir())
    routes = {"/upload": {"language": "en"}, "/add": {"file_id": owned_dataset.file_id}, "/uploadRef": {"text": "x"}}
    for route, data in routes.items():
        for name, content in bombs.items():
            _peak_rss_reset()
            start = _peak_rss_mb()
            r = client.post(route, files={"file": (name, content)}, data=data, headers=H1)
            grew = _peak_rss_mb() - start
            assert r.status_code == 422, (route, name, r.text)
            assert name in r.json()["detail"] and ".part" not in r.text, r.text  # the client's name, not the spool's
            _no_server_detail(app, r.text)
            assert grew < 150, f"{route} {name}: the API process grew {grew:.0f} MB"
    assert set(spool.iterdir()) == before


def test_a_high_rate_reference_is_kept_at_the_reference_rate(app_client) -> None:
    app, client = app_client
    r = client.post("/uploadRef", files={"file": ("hi.wav", _wav(5.0, 192000))}, data={"text": "hi"}, headers=H1)
    assert r.status_code == 200 and r.json()["sample_rate"] == 48000, r.text
    stored = app.state.services.refs.audio(r.json()["file_id"])
    assert stored.stat().st_size < 5.5 * 48000 * 2


def test_spooled_uploads_nothing_will_consume_are_swept(app_client) -> None:
    import os

    from api.services import sweep_spool

    app, client = app_client
    services = app.state.services
    r = client.post("/upload", files={"file": ("a.wav", _wav())}, data={"language": "en"}, headers=H3)
    assert r.status_code == 200, r.text
    queued = services.records.get(r.json()["task_id"]).spool
    orphan = services.settings.uploads_dir / "orphan.part"  # an API process died between spooling and queueing
    orphan.write_bytes(b"x" * 1000)
    old = time.time() - 7200
    for path in (orphan, queued):
        os.utime(path, (old, old))
    assert sweep_spool(services) == 1
    assert not orphan.exists() and os.path.exists(queued)  # a queued task's upload stays however long it waits
    client.delete(f"/tasks/{r.json()['task_id']}", headers=H3)


def test_the_text_in_websocket_needs_a_key_and_keeps_tenants_apart(app_client) -> None:
    app, client = app_client
    voice = _logged_voice(app, K1)
    path = f"/v1/audio/speech/stream-input?model={voice}"
    for headers, first in (({}, {"text": "hi"}), ({}, {"api_key": "wrong", "text": "hi"}), (H2, {"text": "hi"}),
                           ({}, {"api_key": K2, "text": "hi"})):  # fmt: skip
        with client.websocket_connect(path, headers=headers) as ws:
            ws.send_json(first)
            answer = ws.receive_json()
        assert answer["type"] == "error", answer
        assert answer["error"]["code"] == ("unauthorized" if headers == {} and first.get("api_key") != K2 else
                                           "model_not_found"), (headers, first, answer)  # fmt: skip
    with client.websocket_connect(path + "&response_format=ogg", headers=H1) as ws:
        ws.send_json({"text": "hi"})
        answer = ws.receive_json()
    assert answer["error"]["param"] == "response_format", answer  # checked before any work
    with client.websocket_connect(path, headers=H1) as ws:
        ws.send_text("not json")
        assert ws.receive_json()["error"]["code"] == "bad_json"
