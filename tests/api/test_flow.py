"""The API guide's whole flow through the README's curl commands: upload -> tasks -> revision -> train -> uploadRef ->
inference -> output -> streamInference -> resume -> model info / list / delete."""

from __future__ import annotations

import io
import struct

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
