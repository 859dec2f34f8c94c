"""Training callbacks: audio/plot samples of the module being trained, handed to the experiment logger; the bar."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import MLFlowLogger
from matplotlib.figure import Figure

from mockvox.audio.io import write_wav
from mockvox.progress import bar
from mockvox.train.tracking import TrainingCancelled


class SampleCallback(L.Callback):
    """Every ``every_n_epochs`` training epochs, run ``pl_module.sample(batch)`` and log WAVs, plots and a summary.

    The batch is the first one of ``trainer.datamodule.sample_dataloader()`` when the datamodule defines it, else
    the first training batch of the run. With an :class:`MLFlowLogger` the files become artifacts under
    ``samples/epoch_XXX``; otherwise they are copied to ``{default_root_dir}/samples/epoch_XXX/``. Rank zero only.
    """

    def __init__(self, sample_rate: int, every_n_epochs: int = 1):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.sample_rate = sample_rate
        self.every_n_epochs = every_n_epochs
        self._batch = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if trainer.is_global_zero and callable(getattr(datamodule, "sample_dataloader", None)):
            self._batch = next(iter(datamodule.sample_dataloader()), None)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._batch is None and trainer.is_global_zero:
            self._batch = move_data_to_device(batch, "cpu")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not trainer.is_global_zero or self._batch is None or (epoch + 1) % self.every_n_epochs:
            return
        sample = pl_module.sample(move_data_to_device(self._batch, pl_module.device))
        with tempfile.TemporaryDirectory(prefix="mockvox-samples-") as tmp:
            files = write_sample(sample, Path(tmp), self.sample_rate)
            publish(trainer, files, f"samples/epoch_{epoch:03d}")


class StageProgressBar(ProgressBar):
    """One bar per fit in MockVox's style (stderr): every training batch of the run, the epoch, and the metrics the
    module logs with ``prog_bar=True`` (per step while training, the last epoch's means at the end)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.enabled = True
        self._bar = None
        self._epoch = ""

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        epochs = 1 if trainer.fast_dev_run else max(1, trainer.max_epochs - trainer.current_epoch)
        per_epoch = self.total_train_batches
        self._bar = bar(self.name, per_epoch * epochs if math.isfinite(per_epoch) else None, unit="batch")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._bar is None:
            return
        self._epoch = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        self._bar.set_postfix_str(self._summary(trainer, "_step"), refresh=False)
        self._bar.update(1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._summary(trainer, "_epoch") or self._bar.postfix, refresh=False)
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _summary(self, trainer: L.Trainer, suffix: str) -> str:
        """``epoch 2/4, loss=1.23`` from ``train/loss{suffix}``-style progress-bar metrics."""
        shown = []
        for key, value in trainer.progress_bar_metrics.items():
            if key.endswith(suffix):
                shown.append(f"{key.removeprefix('train/').removesuffix(suffix)}={value:.4g}")
        return ", ".join([self._epoch, *shown]) if shown else ""


def publish(trainer: L.Trainer, files: list[Path], artifact_path: str) -> None:
    """Log files as MLflow artifacts of every MLflow logger, or copy them under ``default_root_dir`` without one."""
    mlflow_loggers = [lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)]
    for logger in mlflow_loggers:
        for path in files:
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=artifact_path)
    if not mlflow_loggers:
        target = Path(trainer.default_root_dir) / artifact_path
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy2(path, target / path.name)


def write_sample(sample: dict, folder: Path, sample_rate: int) -> list[Path]:
    """Write what a module's ``sample`` returned: ``wav_*`` as WAV, mels / token accuracy / attention as PNG, and
    scalars in ``summary.json``. Returns the files written."""
    files = [write_wav(folder / f"{k}.wav", np.asarray(v, dtype=np.float32), sample_rate)
             for k, v in sample.items() if k.startswith("wav_")]  # fmt: skip
    if "mel_real" in sample and "mel_gen" in sample:
        files.append(plot_mels(sample["mel_real"], sample["mel_gen"], folder / "mel.png"))
    if "correct" in sample:
        files.append(plot_tokens(sample, folder / "tokens.png"))
    if "attention" in sample:
        files.append(plot_attention(sample["attention"], int(sample.get("text_len", 0)), folder / "attention.png"))
    scalars = {k: np.asarray(v).item() for k, v in sample.items() if np.ndim(v) == 0}
    if scalars:
        (folder / "summary.json").write_text(json.dumps(scalars, indent=2))
        files.append(folder / "summary.json")
    return files


def plot_mels(mel_real: np.ndarray, mel_gen: np.ndarray, path: Path) -> Path:
    """Real above generated log-mel ``[n_mels, T]`` on a shared colour scale."""
    fig = Figure(figsize=(10, 6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    lo, hi = float(min(mel_real.min(), mel_gen.min())), float(max(mel_real.max(), mel_gen.max()))
    for ax, mel, title in zip(axes, (mel_real, mel_gen), ("real", "generated"), strict=True):
        im = ax.imshow(mel, aspect="auto", origin="lower", interpolation="none", vmin=lo, vmax=hi)
        ax.set_title(f"{title} mel")
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("frame")
    fig.colorbar(im, ax=list(axes))
    fig.savefig(path, dpi=100)
    return path


def plot_tokens(sample: dict, path: Path) -> Path:
    """True vs generated semantic tokens after the prompt, misses marked."""
    truth, tokens, correct = (np.asarray(sample[k]) for k in ("truth", "tokens", "correct"))
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(len(truth)), truth, ".", label="truth")
    ax.plot(np.arange(len(tokens)), tokens, "x", label="generated")
    misses = np.flatnonzero(~correct.astype(bool))
    ax.vlines(misses, 0, 1, transform=ax.get_xaxis_transform(), colors="red", alpha=0.15, label="miss")
    ax.set_title(f"continuation after {sample.get('prompt_len', '?')} prompt tokens: accuracy {correct.mean():.3f}")
    ax.set_xlabel("position after prompt")
    ax.set_ylabel("token id")
    ax.legend(loc="upper right")
    fig.savefig(path, dpi=100)
    return path


def plot_attention(attention: np.ndarray, text_len: int, path: Path) -> Path:
    """Attention map ``[T, T]`` (queries down, keys across), the text/audio boundary drawn."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(attention, aspect="auto", origin="upper", interpolation="none")
    if text_len:
        ax.axvline(text_len - 0.5, color="white", lw=0.8)
        ax.axhline(text_len - 0.5, color="white", lw=0.8)
    ax.set_title("last-layer attention (head mean)")
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    fig.colorbar(im, ax=ax)
    fig.savefig(path, dpi=100)
    return path


class TrainObserver:
    """What a caller running a training hears: progress per stage, and a way to ask the training to stop.

    ``progress(stage, done, total)`` gets the feature steps (``text``, ``features``) and, per training stage
    (``sovits`` / ``gpt``), ``done`` and ``total`` in batches with ``epoch`` / ``epochs`` passed along.
    """

    def progress(self, stage: str, done: int, total: int, **info) -> None:
        return None

    def cancelled(self) -> bool:
        return False

    def run_started(self, run_id: str) -> None:
        """The training's MLflow run (its stage runs are children of it)."""
        return None


class ObserverCallback(L.Callback):
    """Reports a fit's batches to a :class:`TrainObserver` and stops it (next batch) when the observer says so."""

    def __init__(self, observer: TrainObserver, stage: str):
        self.observer, self.stage = observer, stage
        self._first_epoch = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_epoch = trainer.current_epoch
        self._check()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._check()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        per_epoch = trainer.num_training_batches if math.isfinite(trainer.num_training_batches) else batch_idx + 1
        epochs = max(1, (trainer.max_epochs or 1) - self._first_epoch)
        epoch = trainer.current_epoch - self._first_epoch
        done = epoch * per_epoch + batch_idx + 1
        self.observer.progress(self.stage, done, epochs * per_epoch, epoch=epoch + 1, epochs=epochs)

    def _check(self) -> None:
        if self.observer.cancelled():
            raise TrainingCancelled(f"{self.stage} training cancelled")
