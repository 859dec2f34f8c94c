"""What a failing world does to the service: cancelled tasks, a worker killed mid-training, a broker that is down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import mlflow

from tests.api.conftest import Receiver, Server, wait_task
from tests.conftest import SAMPLES


def _train(client: httpx.Client, file_id: str) -> str:
    r = client.post("/train", data={"file_id": file_id, "version": "v2", "epochs_sovits": 1, "epochs_gpt": 1})
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def _wait_stage(client: httpx.Client, task_id: str, prefix: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (status := client.get(f"/tasks/{task_id}").json())["status"] in ("PENDING", "STARTED", "PROGRESS"):
        if str(status.get("stage") or "").startswith(prefix) or time.monotonic() > deadline:
            return
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} ended before {prefix}: {status}")


def _runs(server: Server, status: str) -> int:
    client = mlflow.MlflowClient(f"sqlite:///{server.data / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, f"attributes.status = '{status}'"))


def test_cancel_queued_and_running_trainings_then_a_killed_worker_then_resume(server, client, walkthrough) -> None:
    file_id, model_id = walkthrough["file_id"], walkthrough["model_id"]
    models_before = {m["model_id"] for m in client.get("/models").json()["items"]}
    version_before = client.get(f"/datasets/{file_id}").json()["version"]
    running, queued = _train(client, file_id), _train(client, file_id)  # one train worker: the second waits
    assert client.get(f"/tasks/{queued}").json()["status"] == "PENDING"
    cancelled = client.delete(f"/tasks/{queued}").json()
    assert cancelled["status"] == "REVOKED"
    _wait_stage(client, running, "sovits")  # inside the MLflow runs
    killed_before = _runs(server, "KILLED")
    assert client.delete(f"/tasks/{running}").status_code == 200
    stopped = wait_task(client, running, 300)
    assert stopped["status"] == "REVOKED" and "cancel" in stopped["error"]
    assert _runs(server, "KILLED") >= killed_before + 2  # the training's run and its stage run
    lost = _train(client, file_id)
    wait_task(client, lost, 300, until=("PROGRESS",))
    os.kill(server.worker_pids()[1], signal.SIGKILL)  # the train worker (queues prepare, train, infer)
    failed = wait_task(client, lost, 120)
    assert failed["status"] == "FAILURE" and "heartbeat" in failed["error"]
    assert _runs(server, "RUNNING") == 0  # the dead training's MLflow runs are ended (KILLED), not left running
    time.sleep(3)
    assert client.get(f"/tasks/{queued}").json()["status"] == "REVOKED"  # never ran
    assert {m["model_id"] for m in client.get("/models").json()["items"]} == models_before  # nothing registered
    assert client.get(f"/datasets/{file_id}").json()["version"] == version_before
    assert client.get(f"/model/{model_id}").status_code == 200
    server.wait_ready(60)  # the supervisor started a new train worker
    r = client.post("/resume", data={"model_id": model_id, "epochs_sovits": 1, "epochs_gpt": 1})
    resumed = wait_task(client, r.json()["task_id"], 600)
    assert resumed["status"] == "SUCCESS", resumed
    info = client.get(f"/model/{resumed['results']['model_id']}").json()
    assert info["epochs"] == {"sovits": 2, "gpt": 2} and info["resumed_from"] == model_id
    _parallel_deletes_remove_the_voice_and_its_checkpoints(server, client, resumed["results"]["model_id"])


def _checkpoints(server: Server, model_id: str) -> list:
    """The training checkpoints the voice's runs logged, as files in the local artifact store."""
    from urllib.parse import urlparse

    store = mlflow.MlflowClient(f"sqlite:///{server.data / 'mlflow.db'}")
    source = store.get_logged_model(model_id).source_run_id
    runs = [store.get_run(source), *store.search_runs([store.get_run(source).info.experiment_id],
                                                         f"tags.`mlflow.parentRunId` = '{source}'")]  # fmt: skip
    found = []
    for run in runs:
        folder = Path(urlparse(run.info.artifact_uri).path) / "checkpoints"
        found += list(folder.glob("*.ckpt")) if folder.is_dir() else []
    return found


def _parallel_deletes_remove_the_voice_and_its_checkpoints(server: Server, client: httpx.Client, model_id: str):
    from concurrent.futures import ThreadPoolExecutor

    checkpoints = _checkpoints(server, model_id)
    assert checkpoints, "a trained voice's runs hold its checkpoints"
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: client.delete(f"/model/{model_id}").status_code, range(4)))
    assert codes == [200, 404, 404, 404], codes
    assert not any(p.exists() for p in checkpoints)  # the 500 MB a real voice leaves per run
    assert client.get(f"/model/{model_id}").status_code == 404


def test_a_broker_that_is_down_gives_503(tmp_path, ref_clip) -> None:
    srv = Server(tmp_path / "data", ["experiment=demo", "embedded_workers=false"],
                 env={"MOCKVOX_BROKER_URL": "redis://127.0.0.1:9/0"})  # fmt: skip
    try:
        health = srv.wait_ready(120, ok=False)
        assert health["status"] == "degraded" and health["broker"] is False
        with httpx.Client(base_url=srv.url, timeout=60) as c, open(ref_clip, "rb") as fh:
            r = c.post("/upload", files={"file": ("ref.wav", fh, "audio/wav")}, data={"language": "en"})
        assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
        assert httpx.get(f"{srv.url}/health").status_code == 503  # not ready: an orchestrator can act
        assert httpx.get(f"{srv.url}/health/live").status_code == 200
    finally:
        srv.stop()


def test_a_paused_worker_is_declared_lost_once_and_never_contradicted(server, client) -> None:
    receiver = Receiver()
    try:
        with open(SAMPLES / "voice_en.ogg", "rb") as fh:
            r = client.post("/upload", files={"file": ("v.ogg", fh)}, data={"language": "en",
                            "callback_url": receiver.url})  # fmt: skip
        assert r.status_code == 200, r.text
        task, file_id = r.json()["task_id"], r.json()["file_id"]
        wait_task(client, task, 120, until=("PROGRESS",))
        worker = server.worker_pids()[0]  # the prepare worker
        os.kill(worker, signal.SIGSTOP)
        try:
            time.sleep(8 + 5)  # lost_after_s=8 and a sweep: nobody asks for the task meanwhile
            lost = client.get(f"/tasks/{task}").json()
        finally:
            os.kill(worker, signal.SIGCONT)
        assert lost["status"] == "FAILURE" and "heartbeat" in lost["error"], lost
        time.sleep(12)  # the worker wakes up, finds its task decided and stores nothing
        assert client.get(f"/tasks/{task}").json() == lost
        assert client.get(f"/datasets/{file_id}").status_code == 404  # nothing was committed
        for _ in range(100):
            if receiver.bodies(task):
                break
            time.sleep(0.2)
        time.sleep(2)
        assert [b["status"] for b in receiver.bodies(task)] == ["FAILURE"]  # one callback, the verdict's
        assert server.wait_ready(60)["status"] == "ok"
    finally:
        receiver.close()


def test_a_task_past_its_soft_time_limit_fails_naming_it(tmp_path) -> None:
    srv = Server(tmp_path / "data", ["experiment=demo", "time_limits.prepare=[2,0]"])
    try:
        srv.wait_ready()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            with open(SAMPLES / "voice_en.ogg", "rb") as fh:
                r = c.post("/upload", files={"file": ("v.ogg", fh)}, data={"language": "en"})
            done = wait_task(c, r.json()["task_id"], 300)
            assert done["status"] == "FAILURE" and "time limit (2 s)" in done["error"], done
            assert c.get(f"/datasets/{r.json()['file_id']}").status_code == 404
    finally:
        srv.stop()
