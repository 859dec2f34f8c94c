"""A real service for the API tests: ``mockvox serve`` on a free loopback port with its embedded Celery workers
(sqlite broker and stores in a temporary data root), httpx as the client; one tiny voice trained through the
README's curl walk-through and shared by the tests that need a voice."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
import soundfile as sf

from mockvox.audio.io import load_audio
from tests.conftest import SAMPLES

ROOT = Path(__file__).resolve().parents[2]
CALLBACK_SECRET = "test-callback-secret"
MOCKVOX = str(Path(sys.executable).with_name("mockvox"))
# demo voices (tiny, from scratch; not evaluated: test_flow's one training is), quick heartbeats, a small upload
# limit, short outputs
SERVE = ["experiment=demo", "evaluate=false", "heartbeat_s=1", "lost_after_s=8", "limits.upload_mb=20",
         "websocket.send_timeout_s=3", "websocket.idle_s=5",
         "callbacks.allow=[127.0.0.1]", f"callbacks.secret={CALLBACK_SECRET}"]  # fmt: skip
FINAL = ("SUCCESS", "FAILURE", "REVOKED")


class Receiver:
    """A callback destination on a loopback port: the headers and JSON bodies POSTed to it."""

    def __init__(self):
        import json
        from http.server import BaseHTTPRequestHandler, HTTPServer

        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, task_id: str) -> list[dict]:
        return [body for _, body in self.got if body.get("task_id") == task_id]

    def close(self) -> None:
        self.server.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mockvox serve`` (or ``mockvox worker``) as a child process group, stopped with SIGTERM."""

    def __init__(self, data: Path, overrides: list[str], env: dict | None = None, command: str = "serve"):
        self.data, self.port = Path(data), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [MOCKVOX, command, *(["--port", str(self.port)] if command == "serve" else []), *overrides]
        self.log = open(self.data.parent / f"{command}-{self.port}.log", "w")  # noqa: SIM115
        full_env = {**os.environ, "MOCKVOX_DATA": str(self.data), **(env or {})}
        self.proc = subprocess.Popen(args, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.data.parent, start_new_session=True)  # fmt: skip

    def wait_ready(self, timeout: float = 120, ok: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()[-3000:]}")
            try:
                health = httpx.get(f"{self.url}/health", timeout=5).json()
                if health["status"] == "ok" or (not ok and health["status"] != "starting"):
                    return health
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready: {self.output()[-3000:]}")

    def output(self) -> str:
        self.log.flush()
        return (self.data.parent / self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def worker_pids(self) -> list[int]:
        return [int(p) for p in (self.data / "api" / "workers.pid").read_text().split(",") if p]


def wait_task(client: httpx.Client, task_id: str, timeout: float = 600, until=FINAL) -> dict:
    """The task once its status is in ``until`` (as JSON), through the Python client (``mockvox.client``)."""
    from mockvox.client import MockVoxClient, TaskFailed

    vox = MockVoxClient(str(client.base_url), http_client=client)
    if tuple(until) == FINAL:
        try:
            return msgspec.structs.asdict(vox.wait(task_id, timeout=timeout))
        except TaskFailed as failed:
            return msgspec.structs.asdict(failed.task)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = vox.task(task_id)
        if task.status in until:
            return msgspec.structs.asdict(task)
        time.sleep(0.5)
    raise TimeoutError(f"task {task_id} still {task.status}")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    srv = Server(root / "data", SERVE)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def ref_clip(tmp_path_factory) -> Path:
    """5 s of the sample speaker: a reference for /uploadRef."""
    audio, sr = load_audio(SAMPLES / "voice_en.ogg")
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    sf.write(path, audio[sr // 2 : sr // 2 + 5 * sr].astype(np.float32), sr, subtype="PCM_16")
    return path


def readme_walkthrough() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- walkthrough -->\n```bash\n(.*?)```\n<!-- /walkthrough -->", text, re.S).group(1)


@pytest.fixture(scope="session")
def walkthrough(server, ref_clip, tmp_path_factory):
    """The README's curl walk-through run as it stands against the server; its variables and files."""
    work = tmp_path_factory.mktemp("walk")
    names = ("FILE_ID", "MODEL_ID", "REF_ID", "TASK_ID", "NEW_ID")
    script = readme_walkthrough() + "\necho; echo VARS " + " ".join(f"{n}=${n}" for n in names) + "\n"
    env = {**os.environ, "BASE": server.url, "SAMPLE": str(SAMPLES / "voice_en.ogg"), "REF": str(ref_clip),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=1500)  # fmt: skip
    assert done.returncode == 0, f"walk-through failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    line = next(x for x in done.stdout.splitlines() if x.startswith("VARS "))
    found = dict(item.split("=", 1) for item in line.split()[1:])
    return {"dir": work, "stdout": done.stdout, **{k.lower(): v for k, v in found.items()}}
