"""Continue a registered voice: its config, total epochs per stage and full Lightning checkpoints (optimisers too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from mockvox.infer.registry import download_voice, registered_versions, resolve_model_id
from mockvox.train.build import Networks, check_config
from mockvox.train.tracking import Tracker
from mockvox.voice import read_voice_config


@dataclass
class ResumeState:
    model_id: str
    name: str | None
    voice_dir: Path
    config: dict  # the resolved training config of that voice
    epochs: dict  # total epochs per stage so far
    checkpoints: dict[str, Path] = field(default_factory=dict)
    official: bool = False


def load_resume_state(tracker: Tracker, ref: str, cache: Path) -> ResumeState:
    """The voice ``ref`` and its stage checkpoints, downloaded under ``cache`` (:func:`voice_cache_dir`)."""
    model_id = resolve_model_id(tracker, ref)
    voice = download_voice(tracker, model_id, cache)
    meta = read_voice_config(voice)
    training = meta.get("training") or {}
    ckpts = {}
    for stage, run_id in (training.get("runs") or {}).items():
        if run_id:
            dst = cache / f".ckpt-{model_id}" / stage
            dst.mkdir(parents=True, exist_ok=True)
            ckpts[stage] = Path(tracker.client.download_artifacts(run_id, f"checkpoints/{stage}.ckpt", str(dst)))
    if not ckpts:
        raise ValueError(f"model {model_id} has no training checkpoints to resume from")
    versions = registered_versions(tracker, model_id)
    config = training.get("config") or {}
    return ResumeState(model_id, versions[0]["name"] if versions else None, voice, config,
                       dict(training.get("epochs") or {}), ckpts,
                       (config.get("pretrained") or {}).get("name") == "official")  # fmt: skip


def resume_config(state: ResumeState, base: DictConfig, epochs_sovits: int, epochs_gpt: int,
                  overrides: list[str] = ()) -> DictConfig:  # fmt: skip
    """The training config of a resume: the voice's own (upgraded to today's layout), N/M more epochs, the tracking
    of ``base`` (the caller's composed config) and its evaluation settings where the voice has none, then
    ``overrides`` (``key=value``)."""
    from mockvox.train.config import upgrade_train_config

    cfg = upgrade_train_config(state.config)  # a voice trained before a config layout change still resumes
    cfg.epochs = {"sovits": int(epochs_sovits), "gpt": int(epochs_gpt)}
    cfg.resume_from = state.model_id
    cfg.logger = base.logger
    with open_dict(cfg):
        for key in ("evaluate", "evaluation", "asr"):  # a voice trained before evaluations: the caller's settings
            if key not in cfg and key in base:
                cfg[key] = base[key]
    for item in overrides:
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, force_add=True)
    return cfg


def resume_networks(cfg: DictConfig, state: ResumeState) -> Networks:
    """Networks shaped like the voice's; the stage checkpoints then restore every weight and optimiser state."""
    from mockvox.models.sovits_v2 import SynthesizerTrn
    from mockvox.models.sovits_v4 import SynthesizerTrnV3
    from mockvox.voice import load_voice

    check_config(cfg)
    voice = load_voice(state.voice_dir, pretrained_dir=cfg.pretrained.dir)
    kwargs = dict(voice.config["sovits"]["kwargs"])
    sovits = (SynthesizerTrn if voice.version == "v2" else SynthesizerTrnV3)(**kwargs)
    # quantizer and SSL projection (frozen) decide the semantic tokens of the new features
    sovits.load_state_dict(voice.sovits.state_dict(), strict=False)
    gpt_config = voice.config["gpt"]["config"]
    nets = Networks(voice.version, voice.gpt, sovits, voice.hubert, voice.bert, gpt_config=gpt_config,
                    sovits_kwargs=kwargs, official=state.official)  # fmt: skip
    if voice.version == "v2":
        nets.discriminator = _fresh_discriminator()
    else:
        nets.vocoder = voice.vocoder
        nets.vocoder_kwargs = (voice.config.get("vocoder") or {}).get("kwargs")
    return nets


def _fresh_discriminator():
    from mockvox.models.discriminators import MultiPeriodDiscriminator

    return MultiPeriodDiscriminator()  # its weights come from the SoVITS stage checkpoint
