"""``mockvox serve`` (the API, with embedded workers on one machine) and ``mockvox worker`` (queue consumers)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger("api")
OVERRIDES_ENV = "MOCKVOX_SERVE_OVERRIDES"


def _overrides(args) -> list[str]:
    from mockvox.paths import absolute

    items = list(args.overrides)
    data = next((o.split("=", 1)[1] for o in items if o.startswith("paths.data_dir=")), None)
    if data is None:  # every process of the service works on the same data root, wherever it was started
        from api.settings import load_settings

        data = str(load_settings([o for o in items if o.startswith("paths.")]).data_dir)
        items.append(f"paths.data_dir={data}")
    else:
        items = [o if not o.startswith("paths.data_dir=") else f"paths.data_dir={absolute(data)}" for o in items]
    return items


def start_workers(queues: list[str], overrides: list[str]) -> list[subprocess.Popen]:
    """One worker process per queue (a training never holds up an upload or a synthesis)."""
    env = {**os.environ, OVERRIDES_ENV: "\n".join(overrides), "MOCKVOX_WORKER_PARENT": str(os.getpid())}
    procs = [
        subprocess.Popen([sys.executable, "-m", "api.worker.run", q], env=env, stdout=subprocess.DEVNULL)
        for q in queues
    ]  # stdout holds only Celery's banner; logs go to stderr
    log.info("started %d worker process(es): %s", len(procs), ", ".join(queues))
    return procs


def write_pids(path, procs: list[subprocess.Popen]) -> None:
    from mockvox.atomic import write_text

    write_text(path, ",".join(str(p.pid) for p in procs))


def supervise(procs: list[subprocess.Popen], queues: list[str], overrides: list[str], stop, pid_file) -> None:
    """Restart a worker process that died (killed, out of memory) until ``stop`` is set; its task ends FAILURE."""
    while not stop.wait(2.0):
        for i, p in enumerate(procs):
            if p.poll() is not None and not stop.is_set():
                log.warning("worker for %s exited (%s); starting a new one", queues[i], p.returncode)
                procs[i] = start_workers([queues[i]], overrides)[0]
                write_pids(pid_file, procs)


def stop_workers(procs: list[subprocess.Popen], timeout: float = 10) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


def cmd_serve(args) -> None:
    import uvicorn

    from api.settings import load_settings

    overrides = _overrides(args)
    given = {"host": args.host, "port": args.port, "workers": args.workers, "insecure": args.insecure or None}
    settings = load_settings(overrides, **{k: v for k, v in given.items() if v is not None})
    settings.check_binding()
    if settings.callbacks.allow and not settings.callbacks.secret:
        log.warning("callbacks.allow is set but no callback secret (MOCKVOX_CALLBACK_SECRET): callbacks are off")
    if not settings.keys_required:
        log.warning("no API keys set (MOCKVOX_API_KEYS): serving on %s for this machine only", settings.host)
    cli = [f"host={settings.host}", f"port={settings.port}", f"workers={settings.workers}",
           f"insecure={str(settings.insecure).lower()}"]  # fmt: skip
    os.environ[OVERRIDES_ENV] = "\n".join([*overrides, *cli])
    embedded = settings.embedded and settings.embedded_workers
    procs = start_workers(list(settings.queues), [*overrides, *cli]) if embedded else []
    pid_file = settings.state_dir / "workers.pid"
    write_pids(pid_file, procs)
    stop = threading.Event()
    threading.Thread(target=supervise, args=(procs, list(settings.queues), [*overrides, *cli], stop, pid_file),
                     daemon=True).start()  # fmt: skip
    try:
        print(f"MockVox API on http://{settings.host}:{settings.port} (docs: /docs)", file=sys.stderr)
        # request heads up to 256 KB: a /streamInference URL with its longest texts, percent-encoded
        uvicorn.run("api.serve:app", factory=True, host=settings.host, port=settings.port, workers=settings.workers,
                    log_level="warning", access_log=False, h11_max_incomplete_event_size=256 << 10)  # fmt: skip
    finally:
        stop.set()
        stop_workers(procs)


def cmd_worker(args) -> None:
    """One worker process per queue, each restarted when it dies (out of memory, a hard time limit)."""
    overrides = _overrides(args)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    procs = start_workers(queues, overrides)
    try:
        while True:
            time.sleep(2.0)
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    log.warning("worker for %s exited (%s); starting a new one", queues[i], p.returncode)
                    procs[i] = start_workers([queues[i]], overrides)[0]
    except KeyboardInterrupt:
        pass
    finally:
        stop_workers(procs)


def register_cli(sub) -> None:
    from mockvox.config import add_command

    p = add_command(sub, "serve", cmd_serve, "start the REST API (and, without a broker, its workers)", "conf/api.yaml")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 5000)")
    p.add_argument("--workers", type=int, default=None, help="API processes (default 1)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without API keys")
    p = add_command(sub, "worker", cmd_worker, "start Celery workers, one process per queue", "conf/api.yaml")
    p.add_argument("--queues", default="prepare,train,infer", help="comma-separated queues (default all three)")
