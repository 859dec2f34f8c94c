"""The Celery side of the service: one app, queues ``prepare`` / ``train`` / ``infer``, tasks named ``mockvox.*``.

The API only sends tasks by name (:func:`send`), so it never imports the task code; a worker process imports
:mod:`api.worker.tasks`, which wraps the library's functions.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from api.settings import Settings

ROUTES = {"mockvox.prepare": "prepare", "mockvox.add": "prepare", "mockvox.train": "train",
          "mockvox.resume": "train", "mockvox.infer": "infer", "mockvox.callback": "infer"}  # fmt: skip
app = Celery("mockvox")


def configure(settings: Settings, celery: Celery = app) -> Celery:
    """Point ``celery`` at the settings' broker and result backend (sqlite files in the state folder by default)."""
    from api.errors import hide

    hide(*settings.api_keys, *settings.admin_keys, settings.callbacks.secret)  # never in an error a client reads
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    celery.conf.update(
        broker_url=settings.broker,
        result_backend=settings.backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_track_started=True,  # a real STARTED, not PENDING until the end
        task_acks_late=False,  # a killed worker's task is not redelivered: no training runs twice
        worker_prefetch_multiplier=1,
        task_routes={name: {"queue": queue} for name, queue in ROUTES.items()},
        task_default_queue="infer",
        result_extended=True,
        result_expires=timedelta(hours=max(settings.outputs_hours, 24) * 7),
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings.broker),
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        result_backend_transport_options={"retry_policy": {"timeout": 3.0}},
    )
    celery.conf.mockvox_settings = settings
    return celery


def _transport_options(url: str) -> dict:
    if url.startswith(("redis://", "rediss://")):  # longer than any training: a task is never handed out twice
        return {"visibility_timeout": 7 * 24 * 3600}
    if url.startswith("sqla+"):
        # kombu's sqlite transport hands its options to SQLAlchemy, so its poll interval (1 s) is set on the class
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = 0.05
    return {}


def send(name: str, task_id: str, kwargs: dict, celery: Celery = app):
    """Enqueue ``name`` on its queue under ``task_id``."""
    return celery.send_task(name, kwargs=kwargs, task_id=task_id, queue=ROUTES[name])
