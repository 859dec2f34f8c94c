"""Find voices by model id or registry URI, download them, and describe them (``mockvox info`` / ``models``).

:class:`Registry` reads an MLflow tracking store and its model registry; training's ``Tracker`` extends it with runs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from mlflow import MlflowClient  # noqa: E402

from mockvox.voice import CONFIG_NAME, read_voice_config  # noqa: E402

MODEL_ARTIFACT = "voice"  # name of the logged model; its artifacts hold the voice folder under artifacts/voice

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+|latest)$")


class ModelNotFound(LookupError):
    """No voice answers to the given model id or URI."""


class Registry:
    """Read access to one MLflow tracking store (logged models, runs' metrics) and its model registry."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None):
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        if tracking_uri.startswith("sqlite:///"):  # a fresh data root: MLflow creates the database, not its folder
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri, self.registry_uri)

    @classmethod
    def from_config(cls, logger_cfg) -> Registry:
        return cls(logger_cfg.tracking_uri, logger_cfg.get("registry_uri"))

    def last_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)


def resolve_model_id(tracker: Registry, ref: str) -> str:
    """``m-…`` (an MLflow model id), ``models:/m-…``, ``models:/name@alias`` or ``models:/name/version`` -> model id."""
    from mlflow.exceptions import MlflowException

    ref = ref.strip()
    client = tracker.client
    try:
        if m := _ALIAS.match(ref):
            if m["alias"] == "latest":
                return version_model_id(_latest(tracker, m["name"]))
            return version_model_id(client.get_model_version_by_alias(m["name"], m["alias"]))
        if m := _VERSION.match(ref):
            if m["version"] == "latest":
                return version_model_id(_latest(tracker, m["name"]))
            return version_model_id(client.get_model_version(m["name"], m["version"]))
        model_id = ref.removeprefix("models:/")
        client.get_logged_model(model_id)
        return model_id
    except MlflowException as err:
        raise ModelNotFound(
            f"no model {ref!r} in {tracker.tracking_uri}: give an MLflow model id (m-…), models:/NAME@ALIAS or "
            "models:/NAME/VERSION (`mockvox models` lists them)"
        ) from err


def version_model_id(version) -> str:
    """The logged model behind a registry version (its ``source`` is ``models:/<model id>``)."""
    return getattr(version, "model_id", None) or version.source.removeprefix("models:/")


def _latest(tracker: Registry, name: str):
    versions = tracker.client.search_model_versions(f"name='{name}'")
    if not versions:
        raise ModelNotFound(f"registered model {name!r} has no versions")
    return max(versions, key=lambda v: int(v.version))


def voice_cache_dir(cfg) -> Path:
    """Where voices are downloaded: ``<paths.data_dir>/models``, whatever the tracking URI (a server's too)."""
    return Path(cfg.paths.data_dir) / "models"


def download_voice(tracker: Registry, model_id: str, cache_dir: Path) -> Path:
    """The voice folder of ``model_id`` (downloaded once into ``cache_dir/model_id``)."""
    import mlflow.artifacts

    final = cache_dir / model_id
    if (final / CONFIG_NAME).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{model_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    # the logged model's own location: a ``models:/`` URI would be resolved against the process-wide tracking URI
    uri = tracker.client.get_logged_model(model_id).artifact_location
    root = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(staging), tracking_uri=tracker.tracking_uri
    )
    voice = next(Path(root).rglob(CONFIG_NAME), None)
    if voice is None:
        raise ModelNotFound(f"model {model_id} holds no MockVox voice (no mockvox.yaml in its artifacts)")
    shutil.rmtree(final, ignore_errors=True)
    voice.parent.rename(final)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def registered_versions(tracker: Registry, model_id: str) -> list[dict]:
    versions = [v for v in tracker.client.search_model_versions("") if version_model_id(v) == model_id]
    return [{"name": v.name, "version": int(v.version), "aliases": list(v.aliases)} for v in versions]


def model_info(tracker: Registry, ref: str, cache_dir: Path | None = None) -> dict:
    """Version, epochs per stage, dataset, metrics and registry entries of a voice, from MLflow alone (the logged
    model's parameters; a voice logged without them is read from its folder, downloaded into ``cache_dir``)."""
    model_id = resolve_model_id(tracker, ref)
    return summary(tracker, tracker.client.get_logged_model(model_id), cache_dir)


def summary(tracker: Registry, logged, cache_dir: Path | None = None) -> dict:
    params = dict(logged.params or {})
    if "version" in params or cache_dir is None:
        epochs = {
            s: int(params[f"epochs_{s}"]) for s in ("sovits", "gpt") if str(params.get(f"epochs_{s}", "")).isdigit()
        }
        meta = {"version": params.get("version"), "sample_rate": int(params["sample_rate"]) if params.get(
            "sample_rate", "").isdigit() else None, "training": {"epochs": epochs, "file_id": params.get("file_id"),
            "dataset_version": params.get("dataset_version"), "resumed_from": (logged.tags or {}).get(
                "mockvox.resumed_from")}}  # fmt: skip
    else:
        meta = read_voice_config(download_voice(tracker, logged.model_id, cache_dir))
    training = meta.get("training", {})
    metrics = tracker.last_metrics(logged.source_run_id) if logged.source_run_id else {}
    return {
        "model_id": logged.model_id,
        "version": meta["version"],
        "sample_rate": meta["sample_rate"],
        "epochs": training.get("epochs", {}),
        "file_id": training.get("file_id"),
        "dataset_version": training.get("dataset_version"),
        "resumed_from": training.get("resumed_from"),
        "run_id": logged.source_run_id,
        "created": logged.creation_timestamp,
        "registered": registered_versions(tracker, logged.model_id),
        "metrics": metrics,
    }


def voice_models(tracker: Registry, max_results: int = 50, page_token: str | None = None,
                 filter_string: str | None = None) -> tuple[list, str | None]:  # fmt: skip
    """One page of the store's logged voices (those ``filter_string`` selects), newest first: ``(logged models,
    next page token)``."""
    experiments = [e.experiment_id for e in tracker.client.search_experiments()]
    if not experiments:
        return [], None
    page = tracker.client.search_logged_models(
        experiments,
        max_results=max_results,
        page_token=page_token,
        filter_string=filter_string,
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
    )
    return list(page), page.token


def list_models(tracker: Registry) -> list[dict]:
    """Registered voices with their newest version."""
    out = []
    for rm in tracker.client.search_registered_models():
        newest = _latest(tracker, rm.name)
        out.append({"name": rm.name, "versions": int(newest.version), "latest_model_id": version_model_id(newest),
                    "aliases": dict(rm.aliases or {})})  # fmt: skip
    return out


__all__ = ["MODEL_ARTIFACT", "ModelNotFound", "Registry", "download_voice", "list_models", "model_info",
           "resolve_model_id", "summary", "voice_cache_dir", "voice_models"]  # fmt: skip
