"""20 concurrent syntheses (queued and streamed) over two voices give what each gives alone: no crossing, no loss."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import wait_task

TEXTS = ["Good morning to you.", "The weather is lovely today.", "See you tomorrow at noon.",
         "Thank you very much.", "Where is the station?"]  # fmt: skip


@pytest.fixture(scope="module")
def two_voices(client, walkthrough) -> tuple[str, str]:
    r = client.post("/resume", data={"model_id": walkthrough["model_id"], "epochs_sovits": 1, "epochs_gpt": 1})
    done = wait_task(client, r.json()["task_id"], 900)
    assert done["status"] == "SUCCESS", done
    return walkthrough["model_id"], done["results"]["model_id"]


def _params(model_id: str, i: int) -> dict:
    return {"model_id": model_id, "target_text": TEXTS[i % len(TEXTS)], "target_language": "en", "seed": 100 + i,
            "max_tokens": 30}  # fmt: skip


def _inference(url: str, params: dict) -> bytes:
    with httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/inference", data=params)
        assert r.status_code == 200, r.text
        task = r.json()["task_id"]
        assert wait_task(c, task, 600)["status"] == "SUCCESS"
        return c.get(f"/output/{task}").content


def _stream(url: str, params: dict) -> bytes:
    with httpx.Client(base_url=url, timeout=300) as c:
        r = c.get("/streamInference", params=params)
        assert r.status_code == 200, r.text
        return r.content


def test_concurrent_requests_equal_the_same_requests_alone(server, two_voices) -> None:
    jobs = [(_inference if i % 2 else _stream, _params(two_voices[(i // 2) % 2], i)) for i in range(20)]
    alone = [fn(server.url, params) for fn, params in jobs]
    with ThreadPoolExecutor(max_workers=20) as pool:
        together = list(pool.map(lambda job: job[0](server.url, job[1]), jobs))
    for (fn, params), a, b in zip(jobs, alone, together, strict=True):
        assert len(a) > 44 and a == b, f"{fn.__name__} {params} differs when run with 19 others"
    same = {**_params(two_voices[0], 0)}
    assert _stream(server.url, same) != _stream(server.url, {**same, "model_id": two_voices[1]})  # two real voices


def test_a_client_that_goes_away_stops_its_synthesis(server, walkthrough) -> None:
    text = " ".join(f"Sentence number {n}, spoken slowly." for n in range(1, 25))
    params = {"model_id": walkthrough["model_id"], "target_text": text, "target_language": "en", "split": "cut5",
              "max_tokens": 30, "seed": 3}  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=120) as c, c.stream("GET", "/streamInference", params=params) as r:
        assert r.status_code == 200
        first = next(r.iter_bytes())
        assert first[:4] == b"RIFF"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.findall(r"stream stopped after (\d+) chunk\(s\): the client went away", server.output())
        if found:
            assert int(found[-1]) < 24  # of 48 or more chunks (24 fragments): not the rest for nobody
            return
        time.sleep(0.5)
    raise AssertionError("the server kept synthesising for a client that had gone")
