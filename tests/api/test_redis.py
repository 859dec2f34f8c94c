"""Many machines' set-up on one: Redis as broker and result backend, the API only enqueues, two `mockvox worker`
processes (train; prepare + infer) take the work."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.api.conftest import Server, wait_task
from tests.conftest import SAMPLES

URL = "redis://127.0.0.1:6379/14"


@pytest.fixture(scope="module")
def redis_service(tmp_path_factory):
    try:
        redis.Redis.from_url(URL, socket_connect_timeout=2).flushdb()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis at {URL} ({exc}): the many-machines set-up cannot be tested here")
    data = tmp_path_factory.mktemp("redis") / "data"
    data.mkdir()
    env = {"MOCKVOX_BROKER_URL": URL}
    api = Server(data, ["experiment=demo", "heartbeat_s=1"], env)
    workers = [Server(data, ["--queues", q, "experiment=demo", "heartbeat_s=1"], env, command="worker")
               for q in ("train", "prepare,infer")]  # fmt: skip
    try:
        api.wait_ready(180)
        yield api
    finally:
        for s in (api, *workers):
            s.stop()


def test_the_flow_on_redis_with_separate_workers(redis_service, ref_clip) -> None:
    with httpx.Client(base_url=redis_service.url, timeout=60) as c:
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["workers"] == 3 and health["embedded_workers"] == 0
        with open(SAMPLES / "voice_en.ogg", "rb") as fh:
            up = c.post("/upload", files={"file": ("voice.ogg", fh)}, data={"language": "en"}).json()
        assert wait_task(c, up["task_id"], 600)["status"] == "SUCCESS"
        train = c.post("/train", data={"file_id": up["file_id"], "version": "v2"}).json()
        queued = c.post("/train", data={"file_id": up["file_id"], "version": "v2"}).json()["task_id"]
        assert c.delete(f"/tasks/{queued}").json()["status"] == "REVOKED"
        inference = None
        with open(ref_clip, "rb") as fh:
            ref = c.post("/uploadRef", files={"file": ("ref.wav", fh)},
                         data={"text": "The quick brown fox.", "language": "en"}).json()["file_id"]  # fmt: skip
        done = wait_task(c, train["task_id"], 900)
        assert done["status"] == "SUCCESS", done
        inference = c.post("/inference", data={"model_id": done["results"]["model_id"], "ref_audio_file_id": ref,
                                               "target_text": "Hello there.", "target_language": "en",
                                               "max_tokens": 30, "seed": 1}).json()  # fmt: skip
        assert wait_task(c, inference["task_id"], 600)["status"] == "SUCCESS"
        wav = c.get(f"/output/{inference['task_id']}")
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
        assert c.get(f"/tasks/{queued}").json()["status"] == "REVOKED"
