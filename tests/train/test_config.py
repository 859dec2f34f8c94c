"""Composition of the training configs: every experiment, the size shorthand, and configs that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mockvox.train.build import ConfigError, build_networks, check_config
from mockvox.train.config import compose_train, expand_shorthands

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment):
    cfg = compose_train([f"experiment={experiment}", "data.file_id=x"])
    check_config(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert plain["model"]["version"] in ("v2", "v4") and plain["epochs"]["sovits"] >= 1
    assert "${" not in OmegaConf.to_yaml(cfg, resolve=True)


def test_defaults_are_the_official_training_settings():
    cfg = compose_train(["data.file_id=x"])
    assert cfg.model.version == "v4" and cfg.pretrained.name == "official" and cfg.model.size == "official"
    assert cfg.gpt_train.optimizer.lr == 0.01 and cfg.gpt_train.epochs == 20 and cfg.gpt_train.batch_size == 8
    assert cfg.model.sovits_train.lora_rank == 32 and cfg.model.sovits_train.epochs == 2
    v2 = compose_train(["model=v2", "data.file_id=x"])
    assert v2.model.sovits_train.text_low_lr_rate == 0.4 and v2.model.sovits_train.c_mel == 45.0
    assert v2.model.sovits_train.epochs == 100 and v2.model.sovits_train.batch_size == 32
    assert OmegaConf.to_container(v2.model.sovits) == {}  # constructor defaults = s2.json


def test_model_tiny_is_a_size_shorthand_that_keeps_the_version():
    assert expand_shorthands(["model=tiny", "model=v2", "seed=3"]) == ["model.size=tiny", "model=v2", "seed=3"]
    cfg = compose_train(["model=v2", "model=tiny", "pretrained=none", "data.file_id=x"])
    assert cfg.model.version == "v2" and cfg.model.size == "tiny" and cfg.model.sovits.upsample_rates == [10, 8, 8]


@pytest.mark.parametrize(
    "group,options",
    [
        ("trainer", ["cpu", "gpu", "ddp"]),
        ("logger", ["mlflow", "none"]),
        ("debug", ["fdr", "overfit"]),
        ("pretrained", ["official", "none"]),
    ],
)
def test_group_options_compose(group, options):
    for option in options:
        compose_train([f"{group}={option}", "data.file_id=x"])


def test_official_weights_do_not_fit_the_tiny_size():
    with pytest.raises(ConfigError, match="model.size=official"):
        check_config(compose_train(["model=tiny", "data.file_id=x"]))


def test_missing_pretrained_files_name_the_file_and_the_fix(tmp_path):
    cfg = compose_train(["model=v2", "data.file_id=x", f"paths.pretrained_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="mockvox pretrained download"):
        build_networks(cfg)


def test_tiny_networks_build_from_config_with_a_matching_hubert():
    cfg = compose_train(["experiment=demo", "data.file_id=x"])
    nets = build_networks(cfg)
    assert nets.hubert.hidden_size == cfg.model.sovits.ssl_dim and nets.bert is None
    assert nets.discriminator is not None and nets.gpt.config.num_layers == 2
    import numpy as np

    assert np.prod(cfg.model.sovits.upsample_rates) == 640  # the 32 kHz hop


def test_random_quantizer_is_initialised_by_kmeans_on_the_data():
    import torch

    from mockvox.train.build import codebook_ready, init_codebook

    cfg = compose_train(["experiment=demo", "data.file_id=x"])
    nets = build_networks(cfg)
    assert not codebook_ready(nets.sovits)
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(1, 32, 300, generator=g) * 3 for _ in range(3)]  # fewer frames than codes, like a tiny set
    init_codebook(nets.sovits, feats)
    book = nets.sovits.quantizer.vq.layers[0]._codebook
    assert codebook_ready(nets.sovits) and torch.isfinite(book.embed).all()
    assert book.embed.abs().max() < 100  # centroids of the data, no EMA blow-up of empty codes
    codes = nets.sovits.extract_latent(feats[0])
    assert codes.unique().numel() > 20


def test_a_tracker_does_not_leak_its_store_into_later_configs(tmp_path, monkeypatch):
    import os

    from mockvox.train.tracking import Tracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    Tracker(f"sqlite:///{tmp_path}/a/mlflow.db", "leak-check")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    cfg = compose_train(["data.file_id=x", f"paths.data_dir={tmp_path}/b"])
    assert cfg.logger.tracking_uri == f"sqlite:///{tmp_path}/b/mlflow.db"
