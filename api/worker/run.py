"""``python -m api.worker.run QUEUE``: one Celery worker process (solo pool) for one queue, with MockVox's settings."""

from __future__ import annotations

import os
import socket
import sys
import warnings


def _exit_with_parent(parent: int) -> None:
    """A worker started by ``mockvox serve`` / ``mockvox worker`` ends when that process is gone (even killed)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    from api.settings import env_settings
    from api.worker import app, configure
    from mockvox.logs import setup_logging

    queues = (argv if argv is not None else sys.argv[1:]) or ["prepare,train,infer"]
    setup_logging(os.environ.get("MOCKVOX_LOG_LEVEL") or None)
    warnings.filterwarnings("ignore", message="You're running the worker with superuser privileges")
    configure(env_settings(), app)
    import api.worker.tasks  # noqa: F401  (registers the tasks)

    if os.environ.get("MOCKVOX_WORKER_PARENT"):
        _exit_with_parent(int(os.environ["MOCKVOX_WORKER_PARENT"]))
    name = f"{queues[0].replace(',', '+')}-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(["worker", "-Q", queues[0], "--pool=solo", "-n", name, "--loglevel=WARNING",
                     "--without-gossip", "--without-mingle"])  # fmt: skip


if __name__ == "__main__":
    main()
