"""Compose the Hydra configs in ``conf/`` from code (CLI, API, DVC stages) and build typed settings from them."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(name: str, overrides: list[str] | None = None) -> DictConfig:
    """The resolved config ``conf/<name>.yaml`` with Hydra overrides applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=name, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def prepare_settings(cfg: DictConfig):
    """``PrepareConfig`` and the data root from a composed ``prepare`` config."""
    from mockvox.audio.denoise import DenoiseConfig
    from mockvox.audio.slicer import SlicerConfig
    from mockvox.data.asr import AsrConfig
    from mockvox.data.pipeline import PrepareConfig

    settings = PrepareConfig(
        slicer=SlicerConfig(**cfg.slicer),
        denoise=DenoiseConfig(**cfg.denoiser),
        asr=AsrConfig(**cfg.asr),
        max_seconds=float(cfg.max_seconds),
        peak=float(cfg.peak),
        alpha=float(cfg.alpha),
    )
    return settings, Path(cfg.paths.data_dir)
