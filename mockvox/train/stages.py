"""The pieces of a training run: cached features, one Lightning fit per stage, the voice folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from mockvox.data.store import DatasetStore
from mockvox.progress import Bars
from mockvox.train.build import (
    Networks,
    codebook_ready,
    gpt_datamodule,
    gpt_module,
    init_codebook,
    sovits_datamodule,
    sovits_module,
    spectrogram,
)
from mockvox.voice import Reference

STAGES = ("sovits", "gpt")
FEATURE_STEPS = {"features": ("text", "features")}  # feature extraction's text and audio passes: one bar


@dataclass
class StageOutcome:
    total_epochs: int  # epochs this stage has trained in all (earlier trainings included)
    metrics: dict
    checkpoint: Path | None


def check_speech(cfg: DictConfig, store: DatasetStore) -> float:
    """Seconds of usable speech in the dataset; ``NotEnoughSpeech`` below ``data.min_speech_seconds``."""
    from mockvox.data.datasets import require_speech

    file_id = cfg.data.file_id
    results = store.read_output(file_id)["results"]
    return require_speech(file_id, results, store.sliced_dir(file_id), float(cfg.data.min_speech_seconds))


def prepare_features(cfg: DictConfig, store: DatasetStore, nets: Networks, observer=None) -> Path:
    """Features of the dataset's current version (cached by version and extractor identity)."""
    from mockvox.data import features

    bars = Bars(bool(cfg.callbacks.progress), steps=FEATURE_STEPS, units={"features": "clip"})

    def progress(stage: str, done: int, total: int) -> None:
        bars(stage, done, total)
        if observer is not None:
            observer.progress(stage, done, total)
            if observer.cancelled():
                from mockvox.train.tracking import TrainingCancelled

                raise TrainingCancelled("training cancelled during feature extraction")

    file_id, rate = cfg.data.file_id, spectrogram(cfg).sampling_rate
    if not codebook_ready(nets.sovits):  # random quantizer: k-means on this dataset first (official first step)
        audio_dir = store.audio_dir(file_id) if cfg.data.denoise else store.sliced_dir(file_id)
        clips = sorted(audio_dir.glob("*.wav"))
        init_codebook(nets.sovits, [features.hubert_features(nets.hubert, p, rate).clone() for p in clips])
    extractors = features.Extractors.create(nets.hubert, nets.sovits, nets.bert, sample_rate=rate)
    return features.extract_features(
        store, file_id, extractors, Path(cfg.paths.features_dir), use_denoised=bool(cfg.data.denoise),
        progress=progress,
    )  # fmt: skip


def holdout_slices(cfg: DictConfig, store: DatasetStore, manifest: dict, previous=None) -> list[Reference]:
    """The raw slices this training leaves out for evaluation (``data.holdout`` share, at most ``data.holdout_max``;
    never the default reference), see :func:`mockvox.data.datasets.choose_holdout`. A resumed training keeps the
    ``previous`` voice's held-out keys (those still in the dataset), so its scores compare with the earlier ones."""
    from mockvox.data.datasets import choose_holdout

    file_id = cfg.data.file_id
    sliced = store.sliced_dir(file_id)
    if previous is not None:
        kept = set(previous)
        chosen = [r for r in manifest["results"] if r["key"] in kept]
    else:
        ref = reference_clip(manifest, sliced)
        keep = {Path(ref.audio).stem} if ref else set()
        audio_dir = store.audio_dir(file_id) if cfg.data.denoise else sliced  # the audio training would read
        share, most = float(cfg.data.get("holdout", 0.0)), int(cfg.data.get("holdout_max", 0))
        chosen = choose_holdout(manifest["results"], audio_dir, share, most, float(cfg.data.min_speech_seconds), keep)
    return [Reference(sliced / f"{r['key']}.wav", r["text"], manifest["language"]) for r in chosen
            if (sliced / f"{r['key']}.wav").is_file()]  # fmt: skip


def _gpt_parts(cfg: DictConfig, nets: Networks, features_dir: Path, exclude):
    return gpt_module(cfg, nets), gpt_datamodule(cfg, features_dir, exclude), spectrogram(cfg).sampling_rate


def _sovits_parts(cfg: DictConfig, nets: Networks, features_dir: Path, exclude):
    return sovits_module(cfg, nets), sovits_datamodule(cfg, nets, features_dir, exclude), int(cfg.model.sample_rate)


def run_stage(stage: str, cfg: DictConfig, nets: Networks, features_dir: Path, tracker, run_id, resume, workdir: Path,
              observer=None, exclude=()):  # fmt: skip
    """Fit one stage for ``cfg.epochs[stage]`` (more) epochs, without the ``exclude``-d slice keys (held out); log
    its checkpoint to the stage run.

    ``observer`` (a :class:`~mockvox.train.callbacks.TrainObserver`) hears every batch and may stop the fit.
    """
    from mockvox.train.callbacks import ObserverCallback, SampleCallback, StageProgressBar

    parts = _sovits_parts if stage == "sovits" else _gpt_parts
    module, data, sample_rate = parts(cfg, nets, features_dir, exclude)
    epochs = int(cfg.epochs[stage])
    done = int(resume.epochs.get(stage, 0)) if resume else 0
    ckpt_in = resume.checkpoints.get(stage) if resume else None
    if tracker:
        tracker.log_params(run_id, {"stage": stage, "epochs": epochs, "epochs_before": done, "resumed": bool(ckpt_in)})
    if epochs == 0:  # nothing to train: carry the previous weights (and checkpoint) over unchanged
        if ckpt_in:
            module.load_state_dict(torch.load(ckpt_in, map_location="cpu", weights_only=False)["state_dict"])
            if tracker:
                tracker.log_artifact(run_id, ckpt_in, "checkpoints")
        return StageOutcome(done, {}, ckpt_in)
    callbacks = [StageProgressBar(stage)] if cfg.callbacks.progress else []
    if observer is not None:
        callbacks.append(ObserverCallback(observer, stage))
    every = int(cfg.callbacks.samples.every_n_epochs or 0)
    if every:
        callbacks.append(SampleCallback(sample_rate=sample_rate, every_n_epochs=every))
    trainer = hydra.utils.instantiate(
        cfg.trainer, max_epochs=done + epochs, logger=tracker.lightning_logger(run_id) if tracker else False,
        callbacks=callbacks, default_root_dir=str(workdir / stage), enable_checkpointing=False,
        enable_progress_bar=bool(cfg.callbacks.progress),
    )  # fmt: skip
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt_in) if ckpt_in else None, weights_only=True)
    if trainer.interrupted:
        raise KeyboardInterrupt(f"{stage} training interrupted")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.fast_dev_run:
        return StageOutcome(done, metrics, None)
    ckpt_out = workdir / f"{stage}.ckpt"
    trainer.save_checkpoint(ckpt_out, weights_only=False)  # optimiser states too: `mockvox resume` continues
    if tracker:
        tracker.log_artifact(run_id, ckpt_out, "checkpoints")
    return StageOutcome(trainer.current_epoch, metrics, ckpt_out)


def write_voice_folder(cfg: DictConfig, nets: Networks, dest: Path, result, manifest: dict, resume,
                       sliced_dir: Path | None = None, holdout=(),
                       reference: Reference | None = None) -> Path:  # fmt: skip
    """The model folder (official export formats + mockvox.yaml) that inference loads, with a reference clip from
    ``sliced_dir`` (the dataset's raw slices) when one fits (or ``reference``) and the ``holdout`` slices."""
    from mockvox.voice import write_voice

    official = nets.official or (resume is not None and resume.official)
    ref = reference or (reference_clip(manifest, sliced_dir) if sliced_dir is not None else None)
    training = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "file_id": cfg.data.file_id,
        "dataset_version": manifest["version"],
        "epochs": dict(result.epochs),
        "runs": {s: getattr(result, f"{s}_run", None) for s in STAGES},
        "parent_run": result.run_id,
        "resumed_from": resume.model_id if resume else None,
        "holdout": [Path(clip.audio).stem for clip in holdout],
    }
    write_voice(
        dest, version=nets.version, gpt=nets.gpt, sovits=nets.sovits, sovits_kwargs=nets.sovits_kwargs,
        hubert="pretrained" if cfg.pretrained.hubert else nets.hubert,
        bert="pretrained" if cfg.pretrained.bert else None,
        vocoder=None if nets.version == "v2" else ("pretrained" if official else nets.vocoder),
        vocoder_kwargs=nets.vocoder_kwargs,
        sovits_base=None if nets.version == "v2" else ("pretrained" if official else nets.sovits),
        extra={"training": training, "gpt_config": nets.gpt_config}, reference=ref, holdout=holdout,
        spectrogram=spectrogram(cfg),
    )  # fmt: skip
    return dest


def reference_clip(manifest: dict, sliced_dir: Path) -> Reference | None:
    """The dataset's first 3-10 s slice with text: the voice's default reference (and its MLflow input example)."""
    from mockvox.data.pipeline import SAMPLE_RATE  # the slice keys' unit

    for item in manifest["results"]:
        start, end = map(int, item["key"].split("_"))
        clip = Path(sliced_dir) / f"{item['key']}.wav"
        if item.get("text") and 3.0 <= (end - start) / SAMPLE_RATE <= 10.0 and clip.is_file():
            return Reference(clip, item["text"], manifest["language"])
    return None
