"""Build what a training needs from the composed config: networks, LightningModules and data modules.

Networks, optimisers, schedulers and data modules are ``hydra.utils.instantiate``-d from ``model.gpt`` /
``model.sovits`` (``_target_``; ``_partial_`` for what needs the parameters, optimiser or features folder); weights
come from ``pretrained``. Pretrained initialisation happens here (the entry point), never inside a module's
``__init__``. With ``pretrained=none`` every network is seeded random init; the quantizer codebook is then
initialised by k-means on the dataset (:func:`init_codebook`) before semantic tokens are extracted, like the official
first training step does.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mockvox.audio.spectrogram import Spectrogram
from mockvox.models.hubert import HubertSSL
from mockvox.models.t2s import T2SConfig, Text2Semantic
from mockvox.train.config import ConfigError, is_earlier_layout


@dataclass
class Networks:
    """Everything a training run trains or uses to extract features."""

    version: str
    gpt: Text2Semantic
    sovits: nn.Module  # SynthesizerTrn (v2, with enc_q) or SynthesizerTrnV3 (v4, before LoRA)
    hubert: HubertSSL
    bert: Any | None  # mockvox.text.bert.Bert or None (zero BERT features)
    discriminator: nn.Module | None = None  # v2
    vocoder: nn.Module | None = None  # v4
    gpt_config: dict | None = None  # T2SConfig fields
    sovits_kwargs: dict | None = None
    vocoder_kwargs: dict | None = None
    official: bool = False  # weights came from the official pretrained files


def _sizes(node) -> dict:
    """The constructor arguments of a ``_target_`` node (its sizes), plain."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    return {k: v for k, v in plain.items() if k != "_target_"}


def _make(node, *args, **kwargs):
    return instantiate(node, *args, _convert_="all", **kwargs)


def _pretrained_file(cfg: DictConfig, role: str) -> Path:
    files = cfg.pretrained.files.get(cfg.model.version) or {}
    if role not in files:
        raise ConfigError(f"pretrained.files.{cfg.model.version}.{role} is not set")
    path = Path(cfg.pretrained.dir) / files[role]
    if not path.is_file():
        raise ConfigError(
            f"missing pretrained file {path} (pretrained={cfg.pretrained.name}); run "
            f"`mockvox pretrained download --version {cfg.model.version}` or train with pretrained=none"
        )
    return path


def check_config(cfg: DictConfig) -> None:
    """Reject combinations that cannot work before anything heavy is built."""
    if is_earlier_layout(cfg):
        raise ConfigError(
            "this config has the earlier layout (gpt_train / model.sovits_train): convert it with "
            "mockvox.train.config.upgrade_train_config (the stage settings now live under model.gpt / model.sovits)"
        )
    if cfg.model.version not in ("v2", "v4"):
        raise ConfigError(f"model.version must be v2 or v4, not {cfg.model.version!r}")
    sized = (cfg.model.gpt.net, cfg.model.sovits.net, cfg.model.hubert)
    if cfg.model.size != "official" and not any(_sizes(node) for node in sized):
        raise ConfigError(
            f"model.size={cfg.model.size} labels official-size networks: model.size only names the sizes, "
            f"select them with the group, e.g. model/size={cfg.model.size} (options in conf/model/size/)"
        )
    if cfg.pretrained.name == "official" and cfg.model.size != "official":
        raise ConfigError("the official pretrained weights only fit model/size=official; use pretrained=none for tiny")


def build_hubert(cfg: DictConfig, seed: int) -> HubertSSL:
    """The official chinese-hubert-base from the pretrained folder, or a seeded random HuBERT of ``model.hubert``."""
    if cfg.pretrained.hubert:
        path = Path(cfg.pretrained.dir) / cfg.pretrained.hubert
        try:
            return HubertSSL.from_pretrained(path)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from err
    from transformers import HubertModel

    torch.manual_seed(seed)
    return HubertSSL(HubertModel(_make(cfg.model.hubert)).eval())


def build_bert(cfg: DictConfig):
    """Chinese RoBERTa for zh BERT features (official), or None: zero features."""
    if not cfg.pretrained.bert:
        return None
    from mockvox.text.bert import load_bert

    path = Path(cfg.pretrained.dir) / cfg.pretrained.bert
    if not (path / "config.json").is_file():
        raise ConfigError(f"missing pretrained BERT {path}; run `mockvox pretrained download`")
    return load_bert(path, local_files_only=True)


def build_gpt(cfg: DictConfig) -> tuple[Text2Semantic, dict]:
    """``Text2Semantic`` of ``model.gpt.net`` (a ``T2SConfig``), or of the official checkpoint with its weights."""
    if cfg.pretrained.name != "official":
        return Text2Semantic(_make(cfg.model.gpt.net)), _sizes(cfg.model.gpt.net)
    from mockvox.checkpoints import load_gpt_checkpoint

    ckpt = load_gpt_checkpoint(_pretrained_file(cfg, "gpt"))
    config = T2SConfig.from_official(ckpt.config)
    model = Text2Semantic(config)
    model.load_official_state_dict({k: v.float() for k, v in ckpt.weight.items()})
    return model, {k: getattr(config, k) for k in T2SConfig.__dataclass_fields__}


def build_sovits(cfg: DictConfig) -> tuple[nn.Module, dict]:
    """The SoVITS generator of ``model.sovits.net`` (official weights loaded non-strictly like ``s2_train.py``)."""
    from mockvox.checkpoints import load_sovits_checkpoint

    model = _make(cfg.model.sovits.net)
    if cfg.pretrained.name == "official":
        weight = load_sovits_checkpoint(_pretrained_file(cfg, "sovits")).weight
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in weight.items()}, strict=False)
        if unexpected or [k for k in missing if not k.startswith("enc_q.")]:
            raise ConfigError(f"pretrained SoVITS does not fit model {cfg.model.version}: missing {missing[:5]}")
    return model, _sizes(cfg.model.sovits.net)


def build_discriminator(cfg: DictConfig) -> nn.Module:
    from mockvox.checkpoints import load_sovits_checkpoint

    disc = _make(cfg.model.sovits.discriminator)
    if cfg.pretrained.name == "official":
        weight = load_sovits_checkpoint(_pretrained_file(cfg, "discriminator")).weight
        disc.load_state_dict({k: v.float() for k, v in weight.items()})
    return disc


def build_vocoder(cfg: DictConfig) -> tuple[nn.Module, dict]:
    from mockvox.models.vocoder_v4 import load_vocoder

    kwargs = _sizes(cfg.model.vocoder)
    if cfg.pretrained.name == "official":
        return load_vocoder(_pretrained_file(cfg, "vocoder"), **kwargs), kwargs
    return _make(cfg.model.vocoder), kwargs


def build_networks(cfg: DictConfig, with_bert: bool = True) -> Networks:
    """All networks of ``cfg`` with their initial weights (seeded by ``cfg.seed``)."""
    check_config(cfg)
    seed = int(cfg.seed)
    hubert = build_hubert(cfg, seed)
    torch.manual_seed(seed)
    gpt, gpt_config = build_gpt(cfg)
    sovits, sovits_kwargs = build_sovits(cfg)
    nets = Networks(
        cfg.model.version, gpt, sovits, hubert, build_bert(cfg) if with_bert else None,
        gpt_config=gpt_config, sovits_kwargs=sovits_kwargs, official=cfg.pretrained.name == "official",
    )  # fmt: skip
    if cfg.model.version == "v2":
        nets.discriminator = build_discriminator(cfg)
    else:
        nets.vocoder, nets.vocoder_kwargs = build_vocoder(cfg)
    return nets


def codebook_ready(sovits: nn.Module) -> bool:
    return all(bool(layer._codebook.inited.item()) for layer in sovits.quantizer.vq.layers)


@torch.no_grad()
def init_codebook(sovits: nn.Module, ssl_features: list[torch.Tensor]) -> None:
    """k-means initialisation of a random quantizer on projected HuBERT features ``[1, C, T50]`` (official step 1)."""
    if codebook_ready(sovits):
        return
    projected = torch.cat([sovits.ssl_proj(f) for f in ssl_features], dim=2)  # [1, C, sum T25]
    residual = projected[0].t()  # [N, C]
    for layer in sovits.quantizer.vq.layers:  # k-means only: one EMA step on a fresh codebook would blow up empty codes
        book = layer._codebook
        book._init_embed(residual)
        residual = residual - book.decode(book.encode(residual))


def gpt_module(cfg: DictConfig, nets: Networks):
    """The GPT stage's LightningModule: ``model.gpt.optimizer`` / ``scheduler`` partials, ``model.gpt.train``."""
    from mockvox.train.gpt_module import GPTModule

    g = cfg.model.gpt
    return GPTModule(nets.gpt, _make(g.optimizer), _make(g.scheduler), dpo=g.train.dpo, dpo_beta=g.train.dpo_beta,
                     accumulate=g.train.accumulate)  # fmt: skip


def gpt_datamodule(cfg: DictConfig, features_dir: Path, exclude: Collection[str] = ()):
    """``model.gpt.data`` on ``features_dir`` without the ``exclude``-d keys (DPO halves the batch, like the
    official)."""
    g = cfg.model.gpt
    batch = max(1, g.data.batch_size // 2) if g.train.dpo else g.data.batch_size
    make = _make(g.data, batch_size=batch)
    return make(features_dir, num_workers=cfg.data.num_workers, min_items=cfg.data.min_items, seed=cfg.seed,
                exclude=tuple(exclude))  # fmt: skip


def spectrogram(cfg: DictConfig) -> Spectrogram:
    """``model.spectrogram``: the SoVITS input spectrogram (official without one, as configs written before it)."""
    return Spectrogram.from_mapping(cfg.model.get("spectrogram"))


def sovits_module(cfg: DictConfig, nets: Networks):
    """The SoVITS stage's LightningModule: v2 GAN fine-tune, or v4 LoRA (added here) on the CFM."""
    s = cfg.model.sovits
    optimizer, scheduler, t = _make(s.optimizer), _make(s.scheduler), s.train
    if nets.version == "v2":
        from mockvox.train.sovits_module import SovitsV2Module, mel_settings

        return SovitsV2Module(nets.sovits, nets.discriminator, optimizer, scheduler,
                              text_low_lr_rate=t.text_low_lr_rate, c_mel=t.c_mel, c_kl=t.c_kl,
                              mel=mel_settings(spectrogram(cfg)))  # fmt: skip
    from mockvox.models.lora import add_lora, has_lora
    from mockvox.train.sovits_module import SovitsV4Module

    if not has_lora(nets.sovits):
        add_lora(nets.sovits, t.lora_rank, t.lora_alpha)
    return SovitsV4Module(nets.sovits, optimizer, scheduler, shortcut_prob=t.shortcut_prob)


def sovits_datamodule(cfg: DictConfig, nets: Networks, features_dir: Path, exclude: Collection[str] = ()):
    """``model.sovits.data`` on ``features_dir`` without the ``exclude``-d keys, padded to the v2 decoder segment
    (v4 decodes the whole mel)."""
    min_frames = nets.sovits.segment_size if nets.version == "v2" else 0
    return _make(cfg.model.sovits.data)(features_dir, nets.version, num_workers=cfg.data.num_workers,
                                        min_items=cfg.data.min_items, seed=cfg.seed, min_frames=min_frames,
                                        spectrogram=spectrogram(cfg), exclude=tuple(exclude))  # fmt: skip
