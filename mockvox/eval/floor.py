"""The floor of an evaluation: the voice before fine-tuning, rebuilt from the training config the voice records.

The training starts from ``build_networks(cfg)`` after ``torch.manual_seed(cfg.seed)``: the official pretrained
GPT and SoVITS (``pretrained=official``) or seeded random networks (``pretrained=none``; their codebook is not the
k-means one the training starts from). Those networks, with the voice's default reference, are written as a voice
folder in a temporary directory and loaded like any voice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from mockvox.infer.pipeline import Synthesizer
from mockvox.voice import LoadedVoice, load_voice

log = logging.getLogger(__name__)


def floor_config(voice: LoadedVoice, pretrained_dir: Path):
    """The training config recorded in the voice (``training.config``) with this machine's pretrained folder, or
    None for a voice without one (imported from GPT-SoVITS: no starting point is known)."""
    config = (voice.config.get("training") or {}).get("config")
    if not config:
        return None
    cfg = OmegaConf.create(config)
    cfg.paths.pretrained_dir = str(pretrained_dir)
    cfg.pretrained.dir = str(pretrained_dir)
    return cfg


def floor_synthesizer(voice: LoadedVoice, pretrained_dir: Path, workdir: Path, device: str, precision,
                      parts=None) -> Synthesizer | None:  # fmt: skip
    """The un-fine-tuned voice under ``workdir`` (None when the voice records no training config)."""
    from mockvox.models.lora import add_lora
    from mockvox.train.build import build_networks
    from mockvox.train.run import TrainResult
    from mockvox.train.stages import write_voice_folder

    cfg = floor_config(voice, pretrained_dir)
    if cfg is None:
        log.warning("the voice records no training config: no floor (un-fine-tuned) measurement")
        return None
    torch.manual_seed(int(cfg.seed))
    nets = build_networks(cfg)
    if nets.version == "v4":  # zero-initialised adapters: the base generator as it is
        add_lora(nets.sovits, cfg.model.sovits.train.lora_rank, cfg.model.sovits.train.lora_alpha)
    start = TrainResult(None, None, None, None, None, None, epochs={"sovits": 0, "gpt": 0})
    folder = write_voice_folder(cfg, nets, Path(workdir) / "floor", start, {"version": "un-fine-tuned"}, None,
                                reference=voice.reference)  # fmt: skip
    del nets
    return Synthesizer(load_voice(folder, pretrained_dir, device=device, precision=precision, parts=parts))
