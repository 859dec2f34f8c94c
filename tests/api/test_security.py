"""API keys, the loopback rule, the per-key task bound and signed callbacks to allowed hosts only."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from api.callbacks import verify
from api.settings import load_settings
from tests.api.conftest import MOCKVOX, Server, free_port, wait_task
from tests.conftest import SAMPLES

KEYS = "alpha-key,beta-key"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("keyed") / "data", ["experiment=demo", "limits.queued_per_key=1",
                 "callbacks.allow=[127.0.0.1]", "callbacks.secret=s3cret"], env={"MOCKVOX_API_KEYS": KEYS})  # fmt: skip
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_keys_guard_everything_but_health_and_docs(keyed) -> None:
    with httpx.Client(base_url=keyed.url, timeout=30) as c:
        assert c.get("/health").status_code == 200
        page = c.get("/docs")
        assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text  # no CDN: offline
        assert "cdn" not in page.text.lower()
        script = c.get("/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        schema = c.get("/docs/openapi.json").json()
        assert schema["openapi"].startswith("3.1") and "/streamInference" in schema["paths"]
        denied = c.get("/refs")
        assert denied.status_code == 401 and denied.json()["code"] == "unauthorized"
        assert c.get("/refs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/refs", headers={"Authorization": "Bearer alpha-key"}).status_code == 200
        assert c.get("/refs", headers={"X-API-Key": "beta-key"}).status_code == 200


class _Receiver(BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        return None


def test_callbacks_are_signed_and_limited_to_allowed_hosts_and_tasks_are_bounded_per_key(keyed) -> None:
    port = free_port()
    receiver = HTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    auth = {"Authorization": "Bearer alpha-key"}
    try:
        with httpx.Client(base_url=keyed.url, timeout=60, headers=auth) as c:

            def upload(callback: str):
                with open(SAMPLES / "voice_en.ogg", "rb") as fh:
                    return c.post("/upload", files={"file": ("v.ogg", fh)},
                                  data={"language": "en", "callback_url": callback})  # fmt: skip

            refused = upload("http://169.254.169.254/latest/meta-data")
            assert refused.status_code == 422 and "not allowed" in refused.json()["detail"]
            first = upload(f"http://127.0.0.1:{port}/hook")
            assert first.status_code == 200, first.text
            over = upload(f"http://127.0.0.1:{port}/hook")
            assert over.status_code == 429 and over.json()["code"] == "too_many"  # one unfinished task per key
            other = c.get("/refs", headers={"Authorization": "Bearer beta-key"})
            assert other.status_code == 200
            task = first.json()["task_id"]
            assert wait_task(c, task, 600)["status"] == "SUCCESS"
        for _ in range(100):
            if _Receiver.got:
                break
            threading.Event().wait(0.1)
        headers, body = _Receiver.got[0]
        stamp = headers["X-MockVox-Timestamp"]
        signed = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert headers["X-MockVox-Signature"] == "sha256=" + signed  # over the timestamp and the body
        assert verify(body, headers, "s3cret") and not verify(body, headers, "other")
        assert not verify(body, headers, "s3cret", now=int(stamp) + 3600)  # a replay an hour later is refused
        payload = json.loads(body)
        assert payload["task_id"] == task and payload["status"] == "SUCCESS" and payload["results"]["slices"] == 3
    finally:
        receiver.shutdown()


def test_no_keys_means_loopback_only(tmp_path) -> None:
    with pytest.raises(ValueError, match="without API keys"):
        load_settings([f"paths.data_dir={tmp_path}"], host="0.0.0.0").check_binding()
    load_settings([f"paths.data_dir={tmp_path}"], host="0.0.0.0", insecure=True).check_binding()
    load_settings([f"paths.data_dir={tmp_path}"], host="0.0.0.0", api_keys=("k",)).check_binding()
    load_settings([f"paths.data_dir={tmp_path}"], host="::1").check_binding()
    done = subprocess.run([MOCKVOX, "serve", "--host", "0.0.0.0", f"paths.data_dir={tmp_path}"], capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "MOCKVOX_API_KEYS": ""})  # fmt: skip
    assert done.returncode == 2 and "without API keys" in done.stderr
