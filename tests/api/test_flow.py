"""The API guide's whole flow through the README's curl commands: upload -> tasks -> revision -> train -> uploadRef ->
inference -> output -> streamInference -> resume -> model info / list / delete."""

from __future__ import annotations

import io
import json
import struct
import time

import httpx
import numpy as np
import soundfile as sf

from tests.api.conftest import wait_task


def test_the_readme_walkthrough_runs_the_whole_flow(walkthrough, client) -> None:
    w = walkthrough
    assert w["model_id"].startswith("m-") and w["new_id"].startswith("m-") and w["new_id"] != w["model_id"]
    speech, sr = sf.read(w["dir"] / "speech.wav", dtype="int16")
    assert sr == 32000 and speech.size > 0
    raw = (w["dir"] / "stream.wav").read_bytes()
    riff, data = struct.unpack("<I", raw[4:8])[0], struct.unpack("<I", raw[40:44])[0]
    assert raw[:4] == b"RIFF" and raw[36:40] == b"data" and riff == data == 0xFFFFFFFF  # one streaming header
    assert struct.unpack("<I", raw[24:28])[0] == 32000
    streamed = np.frombuffer(raw[44:], dtype="<i2")
    assert streamed.size > 0 and streamed.size % 1 == 0 and abs(streamed.size - speech.size) <= speech.size
    manifest = client.get(f"/datasets/{w['file_id']}").json()
    assert manifest["results"][0]["text"] == "Hello world, this is a test of the voice."  # the revision
    assert len(manifest["results"]) == 3  # the others kept
    info = client.get(f"/model/{w['model_id']}").json()
    assert info["version"] == "v2" and info["epochs"] == {"sovits": 1, "gpt": 1} and info["file_id"] == w["file_id"]
    assert info["dataset_version"] == manifest["version"] and info["registered"][0]["version"] == 1
    gone = client.get(f"/model/{w['new_id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "model_not_found"  # deleted with its artifacts
    listed = [m["model_id"] for m in client.get("/models").json()["items"]]
    assert w["model_id"] in listed and w["new_id"] not in listed
    status = wait_task(client, w["task_id"])
    assert status["status"] == "SUCCESS" and status["progress"] == 100.0 and status["results"]["sample_rate"] == 32000
    wav = client.get(f"/output/{w['task_id']}")
    assert wav.headers["content-disposition"].startswith("attachment") and wav.headers["content-type"] == "audio/wav"
    assert sf.read(io.BytesIO(wav.content), dtype="int16")[0].tolist() == speech.tolist()
    assert "model m-" in w["stdout"] and "resumed m-" in w["stdout"]


def test_requests_are_checked_before_anything_is_queued(walkthrough, client, ref_clip, tmp_path) -> None:
    from tests.api.conftest import wait_task as wait

    file_id, model_id = walkthrough["file_id"], walkthrough["model_id"]
    key = client.get(f"/datasets/{file_id}").json()["results"][1]["key"]
    for results, named in (([{"key": "0000000000_0000000001", "text": "x"}], "0000000000_0000000001"),
                           ([{"key": key, "text": "a"}, {"key": key, "text": "b"}], key),
                           ([{"key": key, "text": "  "}], key)):  # fmt: skip
        r = client.post("/revision", json={"file_id": file_id, "results": results})
        assert r.status_code == 422 and named in r.json()["detail"], r.text
    r = client.post("/revision", data={"file_id": file_id, "results": "[{not json"})
    assert r.status_code == 422 and "results" in r.json()["detail"]
    for form, field in (({"version": "v3"}, "version"), ({"epochs_sovits": 0}, "epochs_sovits"),
                        ({"epochs_gpt": -2}, "epochs_gpt")):  # fmt: skip
        r = client.post("/train", data={"file_id": file_id, **form})
        assert r.status_code == 422 and field in r.json()["detail"], r.text
    short = tmp_path / "short.wav"
    audio, sr = sf.read(ref_clip)
    sf.write(short, audio[: 2 * sr], sr)
    with open(short, "rb") as fh:
        r = client.post("/uploadRef", files={"file": ("short.wav", fh)})
    assert r.status_code == 422 and "3-10 s" in r.json()["detail"]
    with open(short, "rb") as fh:
        small = client.post("/upload", files={"file": ("short.wav", fh)}, data={"language": "en"}).json()
    assert wait(client, small["task_id"])["status"] == "SUCCESS"
    r = client.post("/train", data={"file_id": small["file_id"]})
    assert r.status_code == 422 and "speech" in r.json()["detail"]  # too little speech: refused, nothing queued
    synth = {"model_id": model_id, "target_text": "Hello.", "target_language": "en"}
    assert client.post("/inference", data={**synth, "model_id": "m-" + "0" * 32}).status_code == 404
    assert client.post("/inference", data={**synth, "ref_audio_file_id": file_id}).status_code == 404
    r = client.post("/inference", data={**synth, "target_language": "xx"})
    assert r.status_code == 422 and "target_language" in r.json()["detail"]
    r = client.get("/streamInference", params={**synth, "target_language": "xx"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    name = client.get(f"/model/{model_id}").json()["registered"][0]["name"]
    assert client.get(f"/model/models:/{name}/1").json()["model_id"] == model_id
    latest = client.get(f"/model/models:/{name}@latest").json()  # other tests may have added versions
    versions = {r["version"]: m["model_id"] for m in client.get("/models", params={"limit": 500}).json()["items"]
                for r in m["registered"] if r["name"] == name}  # fmt: skip
    assert latest["model_id"] == versions[max(versions)]
    queued = client.post("/inference", data={**synth, "model_id": f"models:/{name}/1", "max_tokens": 5}).json()
    early = client.get(f"/output/{queued['task_id']}")
    if client.get(f"/tasks/{queued['task_id']}").json()["status"] != "SUCCESS":  # asked before it was done
        assert early.status_code == 409 and early.json()["code"] == "not_ready", early.text
    assert wait(client, queued["task_id"])["results"]["model_id"] == model_id


def test_outputs_expire(walkthrough, client, server) -> None:
    import os
    import time

    task = walkthrough["task_id"]
    wav = server.data / "api" / "outputs" / f"{task}.wav"
    old = time.time() - 25 * 3600
    os.utime(wav, (old, old))
    r = client.get(f"/output/{task}")
    assert r.status_code == 410 and r.json()["code"] == "gone"
    unknown = client.get("/output/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404


def test_a_training_through_the_api_ends_with_its_evaluation(walkthrough, client) -> None:
    import time

    from tests.api.conftest import FINAL

    overrides = ["evaluate=true", "evaluation.limit=1", "evaluation.max_tokens=20", "evaluation.floor=false"]
    r = client.post("/train", json={"file_id": walkthrough["file_id"], "version": "v2", "epochs_sovits": 1,
                                    "epochs_gpt": 1, "overrides": overrides})  # fmt: skip
    assert r.status_code == 200, r.text
    task_id, stages = r.json()["task_id"], set()
    deadline = time.monotonic() + 600
    while (status := client.get(f"/tasks/{task_id}").json())["status"] not in FINAL and time.monotonic() < deadline:
        stages.add(status.get("stage"))
        time.sleep(0.2)
    assert status["status"] == "SUCCESS", status
    assert "evaluation" in stages, stages  # the task's progress names the step
    result = status["results"]
    summary = result["evaluation"]["summary"]
    assert len(result["holdout"]) == 1 and result["evaluation"]["model_id"] == result["model_id"]
    assert 0.0 <= summary["eval/wer"] and summary["eval/ceiling/wer"] < 0.5 and -1 <= summary["eval/speaker_sim"] <= 1
    metrics = client.get(f"/model/{result['model_id']}").json()["metrics"]
    assert metrics["eval/wer"] == summary["eval/wer"] and "eval/ceiling/dnsmos" in metrics


def test_a_slow_client_holds_no_dataset(client, server) -> None:
    """A body that trickles in for seconds holds nothing: the dataset is locked only once a request is read whole."""
    import threading

    from tests.conftest import SAMPLES

    with open(SAMPLES / "voice_en.ogg", "rb") as fh:  # a dataset of its own: the walk-through's stays as it was
        queued = client.post("/upload", files={"file": ("v.ogg", fh)}, data={"language": "en"}).json()
    assert wait_task(client, queued["task_id"])["status"] == "SUCCESS"
    file_id = queued["file_id"]
    key = client.get(f"/datasets/{file_id}").json()["results"][0]["key"]
    body = json.dumps({"file_id": file_id, "results": [{"key": key, "text": "Slowly sent text."}]}).encode()

    def trickle():
        for i in range(0, len(body), 16):
            yield body[i : i + 16]
            time.sleep(4.0 / (len(body) / 16))

    slow: dict = {}
    headers = {"Content-Type": "application/json"}

    def send() -> None:
        slow["r"] = httpx.post(f"{server.url}/revision", content=trickle(), headers=headers, timeout=60)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.0)
    started = time.monotonic()
    fast = client.post("/revision", json={"file_id": file_id, "results": [{"key": key, "text": "Sent at once."}]})
    took, still_sending = time.monotonic() - started, "r" not in slow
    sender.join()
    assert fast.status_code == 200 and slow["r"].status_code == 200, (fast.text, slow["r"].text)
    assert still_sending, "the slow request ended before the other was answered: nothing was shown"
    assert took < 3.0, f"a trickling request held the dataset ({took:.1f} s)"
