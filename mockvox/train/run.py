"""One training: features -> SoVITS stage -> GPT stage -> voice folder -> MLflow model + registry version.

Nothing an earlier training produced is modified: each training (or resume) logs a new MLflow model and registry
version, so a failed or interrupted run leaves every existing voice loadable.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mockvox.config import finalize_paths
from mockvox.data.store import DatasetStore
from mockvox.infer.registry import voice_cache_dir
from mockvox.train import stages
from mockvox.train.build import Networks, build_networks, check_config
from mockvox.train.resume import ResumeState, load_resume_state, resume_networks
from mockvox.train.tracking import Tracker, flatten

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model_id: str | None  # MLflow model id (None without tracking or in debug runs)
    model_uri: str | None
    name: str | None  # registered model name
    version: int | None  # registry version
    run_id: str | None
    voice_dir: Path | None  # the voice folder (only kept without tracking)
    epochs: dict = field(default_factory=dict)  # total epochs per stage
    metrics: dict = field(default_factory=dict)  # the stages' last metrics and the evaluation's eval/* summary
    holdout: list = field(default_factory=list)  # slice keys kept out of training
    evaluation: dict | None = None  # mockvox.eval.run.evaluate's result ({"error": ...} when it failed)

    def as_dict(self) -> dict:
        keys = ("model_id", "model_uri", "name", "version", "run_id", "epochs", "metrics", "holdout")
        out = {k: getattr(self, k) for k in keys}
        if self.evaluation is not None:
            out["evaluation"] = {k: v for k, v in self.evaluation.items() if k != "sentences"}
        out["voice_dir"] = str(self.voice_dir) if self.voice_dir else None
        return out


def _debug_run(cfg: DictConfig) -> bool:
    return bool(cfg.trainer.get("fast_dev_run"))


def train(cfg: DictConfig, store: DatasetStore | None = None, resume: ResumeState | None = None,
          observer=None, extra_tags: Mapping[str, str] | None = None) -> TrainResult:  # fmt: skip
    """Run the training described by a composed ``conf/train.yaml`` (on ``store``, default: the data root's).

    With ``cfg.resume_from`` the voice's state is loaded here unless the caller already did (``resume``).
    ``extra_tags`` are added to the run's, the voice's and its registry version's MLflow tags (e.g. its owner).
    ``observer`` (:class:`~mockvox.train.callbacks.TrainObserver`) hears the progress and can stop the training
    (:class:`~mockvox.train.tracking.TrainingCancelled`: runs KILLED, nothing registered).
    """
    finalize_paths(cfg)  # Hydra's entry point passes the config as composed
    check_config(cfg)
    torch.manual_seed(int(cfg.seed))
    store = store or DatasetStore(cfg.paths.data_dir)
    manifest = store.manifest(cfg.data.file_id)  # DatasetNotFound names the id
    stages.check_speech(cfg, store)  # too little usable speech stops here, before any model is built
    tracker = Tracker.from_config(cfg.logger) if cfg.logger.enabled else None
    if cfg.resume_from:
        if tracker is None:
            raise ValueError("resume needs MLflow tracking (logger=mlflow)")
        resume = resume or load_resume_state(tracker, str(cfg.resume_from), voice_cache_dir(cfg))
        nets = resume_networks(cfg, resume)
    else:
        resume, nets = None, build_networks(cfg)
    features_dir = stages.prepare_features(cfg, store, nets, observer)
    holdout = stages.holdout_slices(cfg, store, manifest, _previous_holdout(resume))
    exclude = [Path(clip.audio).stem for clip in holdout]
    name = cfg.name or (resume.name if resume else None) or f"voice-{cfg.data.file_id}"
    tags = {"mockvox.file_id": cfg.data.file_id, "mockvox.dataset_version": str(manifest["version"]),
            "mockvox.model_version": cfg.model.version, "mockvox.size": cfg.model.size}  # fmt: skip
    if resume:
        tags["mockvox.resumed_from"] = resume.model_id
    tags["mockvox.holdout"] = str(len(holdout))
    tags.update(extra_tags or {})
    workdir = Path(tempfile.mkdtemp(prefix="train-", dir=_ensure(Path(cfg.paths.runs_dir))))
    parent = tracker.run(f"{name}", tags) if tracker else nullcontext(None)
    try:
        with parent as run_id:
            if observer is not None and run_id:
                observer.run_started(run_id)
            if tracker:
                tracker.log_params(run_id, flatten(OmegaConf.to_container(cfg, resolve=True)))
            result = _train_stages(cfg, nets, features_dir, tracker, run_id, resume, workdir, observer, exclude)
            result.holdout = exclude
            if _debug_run(cfg):
                return result
            voice_dir = stages.write_voice_folder(cfg, nets, workdir / "voice", result, manifest, resume,
                                                  store.sliced_dir(cfg.data.file_id), holdout)  # fmt: skip
            if tracker is None:
                keep = _ensure(Path(cfg.paths.runs_dir)) / f"voice-{Path(workdir).name}"
                shutil.move(str(voice_dir), keep)
                result.voice_dir = keep
                return result
            tracker.log_metrics(run_id, {k: v for k, v in result.metrics.items()})
            info = tracker.log_voice(run_id, voice_dir, _model_params(cfg, result, manifest), tags,
                                     pretrained_dir=cfg.paths.pretrained_dir)  # fmt: skip
            mv = tracker.register(info.model_uri, name, {"model_id": info.model_id, **tags})
            result.model_id, result.model_uri, result.name, result.version = (
                info.model_id, info.model_uri, name, int(mv.version))  # fmt: skip
            if cfg.get("evaluate"):
                _evaluate(cfg, result, observer)
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _previous_holdout(resume: ResumeState | None) -> list[str] | None:
    """A resumed voice's held-out keys (none for a voice trained before hold-outs existed: it saw every slice)."""
    if resume is None:
        return None
    from mockvox.voice import read_voice_config

    return list(read_voice_config(resume.voice_dir).get("training", {}).get("holdout") or [])


def _evaluate(cfg: DictConfig, result: TrainResult, observer=None) -> None:
    """The registered voice's evaluation (``evaluation`` settings); a failure is reported, the voice stays."""
    from mockvox.eval.run import evaluate
    from mockvox.progress import Bars

    bars = Bars(bool(cfg.callbacks.progress), units={"evaluate": "clip"})

    def progress(done: int, total: int) -> None:
        bars("evaluate", done, total)
        if observer is not None:
            observer.progress("evaluate", done, total)

    try:
        result.evaluation = evaluate(result.model_id, cfg, progress=progress)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the voice is registered: report, keep it
        log.error("evaluation of %s failed (the voice is registered; `mockvox evaluate %s` retries): %s",
                  result.model_id, result.model_id, exc)  # fmt: skip
        result.evaluation = {"error": f"{type(exc).__name__}: {exc}"}
        return
    finally:
        bars.close()
    result.metrics.update(result.evaluation["summary"])


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _train_stages(cfg, nets: Networks, features_dir: Path, tracker, parent_id, resume, workdir: Path,
                  observer=None, exclude=()) -> TrainResult:  # fmt: skip
    result = TrainResult(None, None, None, None, parent_id, None)
    for stage in ("sovits", "gpt"):
        child = tracker.run(f"{stage}", {"mockvox.stage": stage}, parent=parent_id) if tracker else nullcontext(None)
        with child as child_id:
            outcome = stages.run_stage(stage, cfg, nets, features_dir, tracker, child_id, resume, workdir, observer,
                                       exclude)  # fmt: skip
        result.epochs[stage] = outcome.total_epochs
        result.metrics.update({f"{stage}/{k}": v for k, v in outcome.metrics.items()})
        setattr(result, f"{stage}_run", child_id)
    return result


def _model_params(cfg: DictConfig, result: TrainResult, manifest: dict) -> dict:
    return {
        "version": cfg.model.version,
        "size": cfg.model.size,
        "pretrained": cfg.pretrained.name,
        "file_id": cfg.data.file_id,
        "dataset_version": manifest["version"],
        "epochs_sovits": result.epochs.get("sovits"),
        "epochs_gpt": result.epochs.get("gpt"),
        "sample_rate": cfg.model.sample_rate,
    }
