"""MLflow glue: one parent run per training, a child run per stage, the voice as a logged pyfunc model, the registry.

Runs are addressed by id through :class:`mlflow.MlflowClient` (no global active run), so several trainings can share
a process. The default store is sqlite in the data root; ``logger.tracking_uri`` (or ``MLFLOW_TRACKING_URI``) points
at a tracking server instead.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag

from mockvox.infer.registry import MODEL_ARTIFACT, Registry

log = logging.getLogger(__name__)


class TrainingCancelled(Exception):
    """A training stopped on request: its MLflow runs end KILLED and nothing is registered.

    Not a ``KeyboardInterrupt``: Lightning answers that one by exiting the process, and a worker must live on.
    """


PARENT_TAG = "mlflow.parentRunId"


def flatten(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return out


def _local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


class Tracker(Registry):
    """MLflow runs, models and registry for one tracking store."""

    def __init__(self, tracking_uri: str, experiment_name: str = "mockvox", artifact_location: str | None = None,
                 registry_uri: str | None = None):  # fmt: skip
        super().__init__(tracking_uri, registry_uri)
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(tracking_uri)  # MLflow also exports these to os.environ: undo that, or every later
        mlflow.set_registry_uri(registry_uri or tracking_uri)  # config composed in this process would inherit them
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        exp = self.client.get_experiment_by_name(experiment_name)
        if exp is None:
            location = None
            if artifact_location and _local_store(tracking_uri):
                location = Path(artifact_location).resolve().as_uri()
            exp_id = self.client.create_experiment(experiment_name, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        self.experiment_id = exp_id
        self.experiment_name = experiment_name

    @classmethod
    def from_config(cls, logger_cfg) -> Tracker:
        return cls(logger_cfg.tracking_uri, logger_cfg.experiment_name, logger_cfg.get("artifact_location"),
                   logger_cfg.get("registry_uri"))  # fmt: skip

    # --- runs -------------------------------------------------------------------------------------------------------
    def start_run(self, name: str, tags: Mapping[str, str] | None = None, parent: str | None = None) -> str:
        tags = dict(tags or {})
        if parent:
            tags[PARENT_TAG] = parent
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    @contextmanager
    def run(self, name: str, tags: Mapping[str, str] | None = None, parent: str | None = None) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED / KILLED when the block raises."""
        run_id = self.start_run(name, tags, parent)
        try:
            yield run_id
        except (KeyboardInterrupt, TrainingCancelled):
            self.end_run(run_id, "KILLED")
            raise
        except BaseException:
            self.end_run(run_id, "FAILED")
            raise
        self.end_run(run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def lightning_logger(self, run_id: str):
        from lightning.pytorch.loggers import MLFlowLogger

        return MLFlowLogger(experiment_name=self.experiment_name, tracking_uri=self.tracking_uri, run_id=run_id)

    # --- models -----------------------------------------------------------------------------------------------------
    def log_voice(self, run_id: str, voice_dir: Path, params: Mapping[str, Any], tags: Mapping[str, str],
                  pretrained_dir: str | os.PathLike | None = None):  # fmt: skip
        """Log the voice folder as a pyfunc model of ``run_id``; returns MLflow's ``ModelInfo`` (``model_id``).

        The model is its code (:mod:`mockvox.train.voice_model`), not a pickle. MLflow loads it once and runs its
        input example (the bundled reference read back); ``pretrained_dir`` holds the official parts it names.
        """
        from mockvox import __version__
        from mockvox.train import pyfunc

        run = mlflow.start_run(run_id=run_id, experiment_id=self.experiment_id)
        with run, _env("MOCKVOX_PRETRAINED", pretrained_dir):
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(Path(pyfunc.__file__).with_name("voice_model.py")),  # imported only on load
                artifacts={"voice": str(voice_dir)},
                pip_requirements=[f"mockvox=={__version__}"],
                signature=pyfunc.signature(),
                input_example=pyfunc.input_example(voice_dir),
                params={k: str(v) for k, v in params.items()},
                tags=dict(tags),
            )
        return info

    def register(self, model_uri: str, name: str, tags: Mapping[str, str] | None = None):
        """A new version of registered model ``name`` (``models:/name@latest`` resolves to the newest).

        Through the client, which (unlike ``mlflow.register_model``) prints nothing: the caller reports the version.
        """
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException as err:
            if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        return self.client.create_model_version(name, model_uri, tags=dict(tags or {}), model_id=model_id)

    def _with_children(self, run_id: str) -> list:
        run = self.client.get_run(run_id)
        return [run, *self.client.search_runs([run.info.experiment_id], f"tags.`{PARENT_TAG}` = '{run_id}'")]

    def end_runs(self, run_id: str, status: str = "KILLED") -> int:
        """End a run and its child runs that are still RUNNING (a training whose process died); returns how many."""
        ended = 0
        for r in self._with_children(run_id):
            if r.info.status == "RUNNING":
                self.client.set_terminated(r.info.run_id, status)
                ended += 1
        return ended

    def delete_voice(self, model_id: str, keep_checkpoints: bool = False) -> list[dict]:
        """Remove a voice: its registry versions, the logged model and its artifacts, and (unless
        ``keep_checkpoints``) the training checkpoints its runs logged; returns the versions.

        Raises:
            MlflowException: no such model (RESOURCE_DOES_NOT_EXIST), e.g. deleted meanwhile.
        """
        from mockvox.infer.registry import registered_versions

        logged = self.client.get_logged_model(model_id)
        versions = registered_versions(self, model_id)
        for v in versions:
            _unless_gone(self.client.delete_model_version, v["name"], str(v["version"]))
        _unless_gone(self.client.delete_logged_model, model_id)
        _delete_artifacts(logged.artifact_location, None)
        if not keep_checkpoints and logged.source_run_id:
            for run in self._with_children(logged.source_run_id):
                _delete_artifacts(run.info.artifact_uri, "checkpoints")
        return versions


def _unless_gone(fn, *args) -> None:
    """``fn(*args)``, where a thing already deleted (by a parallel request) is as good as deleted now."""
    from mlflow.exceptions import MlflowException

    try:
        fn(*args)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def _delete_artifacts(location: str, path: str | None) -> None:
    """Delete ``path`` (None: everything) under an artifact location, in whatever store holds it."""
    import shutil
    from urllib.parse import urlparse

    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):  # a local store: the folder too
        shutil.rmtree(Path(parsed.path) / (path or ""), ignore_errors=True)
        return
    try:
        get_artifact_repository(location).delete_artifacts(path)
    except (NotImplementedError, OSError) as exc:
        log.warning("artifacts at %s not deleted: %s", location, exc)


@contextmanager
def _env(name: str, value: str | os.PathLike | None) -> Iterator[None]:
    """``os.environ[name] = value`` inside the block (nothing when ``value`` is None)."""
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = str(value)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
