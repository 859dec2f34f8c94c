"""Limits: bodies past ``limits.upload_mb`` are refused (413) as soon as they pass it, declared or streamed, without
the body in memory or on disk; texts past ``limits.text_chars`` are 422; malformed bodies are 400, all with the error
body."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.api.conftest import SERVE

LIMIT = int(float(next(s.split("=", 1)[1] for s in SERVE if s.startswith("limits.upload_mb="))) * 2**20)
TEXT_CHARS = 2000  # limits.text_chars (conf/api.yaml; the tests' server keeps it)
BOUNDARY = "mockvox-limits"
PART = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip
CHUNK = 1 << 20


def request_head(server, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer with a Content-Length."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


class PeakRss(threading.Thread):
    """The highest VmRSS of a process while running (sampled every 5 ms)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, rss_kb(pid), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):
            self.peak = max(self.peak, rss_kb(self.pid))

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join()


def send_chunked(server, path: str, total: int) -> tuple[int, dict, bytes, int]:
    """A multipart upload of ``total`` bytes as a chunked body (no Content-Length), 1 MB a chunk; sending stops when
    the server answers (or refuses more). Returns the answer and the bytes sent before it."""
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Transfer-Encoding": "chunked"}
    pieces, sent = [PART, *[bytes(CHUNK)] * (total // CHUNK), f"\r\n--{BOUNDARY}--\r\n".encode()], 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_head(server, path, headers))
        for piece in pieces:
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:  # an answer (or a close) is waiting
                break
        else:
            sock.sendall(b"0\r\n\r\n")
        status, got, body = read_response(sock)
    return status, got, body, sent


def leftovers(server) -> list[Path]:
    incoming = server.data / "api" / "incoming"
    return sorted(incoming.iterdir()) if incoming.is_dir() else []


def error_body(raw: bytes, status: int, code: str) -> dict:
    body = json.loads(raw)
    assert set(body) == {"detail", "code", "status"} and body["status"] == status and body["code"] == code, body
    return body


def test_a_declared_length_past_the_limit_is_413_before_any_body_is_sent(server) -> None:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(2 * LIMIT),
               "Accept-Language": "en"}  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        start = time.monotonic()
        sock.sendall(request_head(server, "/upload", headers))
        status, _, raw = read_response(sock, timeout=10)
    assert status == 413 and time.monotonic() - start < 5
    body = error_body(raw, 413, "too_large")
    assert body["detail"] == f"the request body exceeds the limit ({LIMIT / 2**20:.1f} MB)", body


@pytest.mark.parametrize("path", ["/upload", "/uploadRef"])
def test_a_streamed_upload_past_the_limit_is_413_as_it_passes_without_memory_or_disk(server, path) -> None:
    status, *_ = send_chunked(server, path, 2 * CHUNK)  # warm-up: the same path with a small (undecodable) upload
    assert status == 422 and not leftovers(server)
    before = rss_kb(server.proc.pid)
    with PeakRss(server.proc.pid) as rss:
        status, _, raw, sent = send_chunked(server, path, 2 * LIMIT)
    body = error_body(raw, 413, "too_large")
    print(f"\n{path}: 413 after {sent / CHUNK:.1f} MB sent; RSS +{(rss.peak - before) / 1024:.2f} MB")
    assert body["detail"].startswith("文件大小超过限制"), body  # no Accept-Language: Chinese
    # answered as the limit passed: what was sent on top is what sat in the socket buffers (a few MB on loopback)
    assert LIMIT < sent < LIMIT + 12 * CHUNK, f"sent {sent / CHUNK:.1f} MB before the answer"
    assert rss.peak - before < 4 * 1024, f"the server grew by {(rss.peak - before) / 1024:.1f} MB"
    deadline = time.monotonic() + 3
    while leftovers(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftovers(server), leftovers(server)


@pytest.mark.parametrize("field", ["target_text", "ref_text"])
def test_texts_past_the_limit_are_422_naming_the_field(client, field) -> None:
    model = "m-" + "0" * 32
    base = {"model_id": model, "target_text": "好", "target_language": "zh"}
    long = {**base, field: "好" * (TEXT_CHARS + 1)}
    for answer in (client.post("/inference", json=long), client.post("/inference", data=long),
                   client.get("/streamInference", params=long)):  # fmt: skip
        assert answer.status_code == 422, answer.text[:300]
        body = answer.json()
        assert body["code"] == "invalid" and field in body["detail"] and str(TEXT_CHARS) in body["detail"], body
    at_limit = client.post("/inference", json={**base, field: "好" * TEXT_CHARS})
    assert at_limit.status_code == 404 and at_limit.json()["code"] == "model_not_found"  # the text passed


@pytest.mark.parametrize(
    "content_type, raw, status, code",
    [
        ("application/json", b'{"file_id": "x", ', 400, "bad_json"),
        ("application/json", b"[1, 2]", 400, "bad_json"),
        ("application/json", b"\xff\xfe{}", 400, "bad_json"),
        ("application/json", b"[" * 100_000, 400, "bad_json"),  # nested past the decoder's recursion limit
        ("application/json", b'{"file_id": ' + b"7" * 5000 + b"}", 400, "bad_json"),  # past int's 4300 digits
        ("multipart/form-data", b"--x\r\n\r\n", 400, "bad_body"),  # no boundary
        (f"multipart/form-data; boundary={BOUNDARY}", PART + b"cut short", 400, "bad_body"),
        ("application/x-www-form-urlencoded", b"file_id=%FF%FE", 400, "bad_body"),
        ("text/plain", b"file_id=x", 415, "media_type"),
    ],
)
def test_a_malformed_body_is_400_with_the_error_body(client, content_type, raw, status, code) -> None:
    answer = client.post("/revision", content=raw, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text[:300]
    body = answer.json()
    assert set(body) == {"detail", "code", "status"} and body["status"] == status and body["code"] == code, body


def test_limit_messages_follow_accept_language(client) -> None:
    raw, headers = b"[" * 100_000, {"Content-Type": "application/json"}
    assert client.post("/revision", content=raw, headers=headers).json()["detail"].startswith("JSON 格式错误")
    en = client.post("/revision", content=raw, headers={**headers, "Accept-Language": "en"}).json()["detail"]
    assert en.startswith("invalid JSON"), en
