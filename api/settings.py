"""The service's settings: ``conf/api.yaml`` composed with overrides, plus the training and synthesis defaults."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from api.overrides import Allowed, allow_list
from mockvox.audio.probe import AudioLimits
from mockvox.config import compose, finalize_paths, is_override

INFER_KEYS = {"device", "precision", "cache", "logger"}  # conf/infer.yaml keys a serve override may set


@dataclass(frozen=True)
class Limits:
    upload_mb: float = 500
    text_chars: int = 2000
    queued_per_key: int = 20
    stream_concurrency: int = 2
    lock_wait_s: float = 2.0
    refs_per_key: int = 200
    ref_rate: int = 48000  # references are kept at this rate at most

    @property
    def upload_bytes(self) -> int:
        return int(self.upload_mb * 2**20)


@dataclass(frozen=True)
class WebSocketLimits:
    """``/v1/audio/speech/stream-input``: how text is cut and how long a socket may wait."""

    min_chars: int = 30  # a segment is spoken once it ends a sentence and holds this many characters
    max_chars: int = 300  # ... or at its last clause mark once it holds this many
    idle_s: float = 60  # no message for this long: the socket is closed
    send_timeout_s: float = 30  # a client that takes no audio for this long is dropped (its synthesis stops)
    session_chars: int = 100_000  # text one socket may send in all
    queued_segments: int = 4  # segments waiting for synthesis; past this the server stops reading the socket


@dataclass(frozen=True)
class Callbacks:
    secret: str = ""
    allow: tuple[str, ...] = ()
    retries: int = 3
    timeout_s: float = 10


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    insecure: bool = False
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()  # keys that see every tenant's data
    cors_origins: tuple[str, ...] = ()
    broker_url: str = ""
    result_backend: str = ""
    records_url: str = ""
    embedded_workers: bool = True
    queues: tuple[str, ...] = ("prepare", "train", "infer")
    language: str = "zh"
    limits: Limits = field(default_factory=Limits)
    audio: AudioLimits = field(default_factory=AudioLimits)  # what an upload's header may declare (durations per route)
    outputs_hours: float = 24
    health_every_s: float = 1.0
    heartbeat_s: float = 10
    lost_after_s: float = 90
    time_limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # queue: (soft, hard) seconds
    callbacks: Callbacks = field(default_factory=Callbacks)
    websocket: WebSocketLimits = field(default_factory=WebSocketLimits)
    train_overrides: tuple[str, ...] = ()
    train_allow: Mapping[str, Allowed] = field(default_factory=dict)  # key: its type and range (api.overrides)
    infer_overrides: tuple[str, ...] = ()

    # --- derived -----------------------------------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """No broker configured: sqlite broker and results in the state folder, workers started by the server."""
        return not self.broker_url

    @property
    def broker(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.state_dir / 'broker.db'}"

    @property
    def backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return f"db+sqlite:///{self.state_dir / 'results.db'}"

    @property
    def records(self) -> str:
        return self.records_url or f"sqlite:///{self.state_dir / 'records.db'}"

    @property
    def refs_dir(self) -> Path:
        return self.state_dir / "refs"

    @property
    def outputs_dir(self) -> Path:
        return self.state_dir / "outputs"

    @property
    def uploads_dir(self) -> Path:
        return self.state_dir / "incoming"

    @property
    def keys_required(self) -> bool:
        return bool(self.api_keys or self.admin_keys)

    def check_binding(self) -> None:
        """Refuse to listen beyond loopback without API keys unless ``insecure`` says so."""
        if self.keys_required or self.insecure or _loopback(self.host):
            return
        raise ValueError(f"refusing to serve on {self.host} without API keys: set MOCKVOX_API_KEYS, or pass --insecure")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_serve_overrides(overrides: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``(api, infer, train)`` overrides: keys of ``conf/api.yaml``, synthesis keys, everything else (training)."""
    api_keys = set(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "api.yaml")) - {"defaults"}
    api, infer, train = [], [], []
    for item in overrides:
        top = item.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("/", 1)[0]
        (api if top in api_keys or top == "paths" else infer if top in INFER_KEYS else train).append(item)
    return api, infer, train


def load_settings(overrides: list[str] | None = None, **values) -> Settings:
    """Compose ``conf/api.yaml``; a serve override that names no api key sets training / synthesis defaults.

    Raises:
        ValueError: an override that none of the configs takes (the training config is composed here to check).
    """
    api, infer, train = split_serve_overrides([o for o in overrides or [] if is_override(o)])
    cfg = finalize_paths(compose("api", api))
    if train:
        compose("train", train)  # raises on an override the training config cannot take
    if infer:
        compose("infer", infer)
    return settings_from_config(cfg, train, infer, **values)


def _csv(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def settings_from_config(cfg: DictConfig, train: list[str] = (), infer: list[str] = (), **values) -> Settings:
    c = OmegaConf.to_container(cfg, resolve=True)
    data_dir = Path(c["paths"]["data_dir"])
    out = Settings(
        data_dir=data_dir,
        state_dir=Path(c["state_dir"]),
        host=str(c["host"]),
        port=int(c["port"]),
        workers=int(c["workers"]),
        insecure=bool(c["insecure"]),
        api_keys=_csv(c["api_keys"]),
        admin_keys=_csv(c["admin_keys"]),
        cors_origins=_csv(c["cors_origins"]),
        broker_url=str(c["broker_url"] or ""),
        result_backend=str(c["result_backend"] or ""),
        records_url=str(c["records_url"] or ""),
        embedded_workers=bool(c["embedded_workers"]),
        queues=_csv(c["queues"]),
        language=str(c["language"]),
        limits=Limits(**c["limits"]),
        audio=AudioLimits(**(c.get("audio") or {})),
        outputs_hours=float(c["outputs_hours"]),
        health_every_s=float(c["health_every_s"]),
        heartbeat_s=float(c["heartbeat_s"]),
        lost_after_s=float(c["lost_after_s"]),
        time_limits={q: (float(v[0]), float(v[1])) for q, v in (c.get("time_limits") or {}).items()},
        callbacks=Callbacks(**{**c["callbacks"], "allow": _csv(c["callbacks"]["allow"])}),
        websocket=WebSocketLimits(**(c.get("websocket") or {})),
        train_overrides=tuple(c["train_overrides"]) + tuple(train),
        train_allow=allow_list(c["train_allow"]),
        infer_overrides=tuple(c["infer_overrides"]) + tuple(infer),
    )
    return replace(out, **values) if values else out


def env_settings() -> Settings:
    """The settings a worker process was started with (``MOCKVOX_SERVE_OVERRIDES``, newline-separated)."""
    raw = os.environ.get("MOCKVOX_SERVE_OVERRIDES", "")
    return load_settings([line for line in raw.splitlines() if line.strip()])
