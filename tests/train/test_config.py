"""Composition of the training configs: every experiment and group option, the size group, configs that cannot work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mockvox.train.build import ConfigError, build_networks, check_config
from mockvox.train.config import compose_train

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
    gpt = cfg.model.gpt
    assert gpt.optimizer.lr == 0.01 and gpt.train.epochs == 20 and gpt.data.batch_size == 8
    assert cfg.model.sovits.train.lora_rank == 32 and cfg.model.sovits.train.epochs == 2
    v2 = compose_train(["model=v2", "data.file_id=x"])
    assert v2.model.sovits.train.text_low_lr_rate == 0.4 and v2.model.sovits.train.c_mel == 45.0
    assert v2.model.sovits.train.epochs == 100 and v2.model.sovits.data.batch_size == 32
    assert _sizes(v2.model.sovits.net) == {}  # constructor defaults = s2.json


def _sizes(node) -> dict:
    """A network node's constructor arguments (without its ``_target_``)."""
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "_target_"}


T2S, V2_NET, V4_NET, HUBERT = ("mockvox.models.t2s.T2SConfig", "mockvox.models.sovits_v2.SynthesizerTrn",
                               "mockvox.models.sovits_v4.SynthesizerTrnV3", "transformers.HubertConfig")  # fmt: skip
TINY_V2_SOVITS = {"segment_size": 8, "upsample_rates": [10, 8, 8], "ssl_dim": 32, "n_flows": 2}
TINY_V4_SOVITS = {"cond_channels": 32, "wns_layers": 2, "ssl_dim": 32, "dit": {"dim": 64, "depth": 2}}
TINY_GPT = {"hidden_dim": 64, "num_heads": 2, "num_layers": 2}


def _subset(node, expected: dict) -> bool:
    plain = OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else node
    return all(_subset(plain[k], v) if isinstance(v, dict) and v else plain[k] == v for k, v in expected.items())


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_size_is_a_group_that_keeps_the_version(version):
    official = compose_train([f"model={version}", "data.file_id=x"])
    assert official.model.size == "official" and official.model.version == version
    m = official.model
    assert all(_sizes(node) == {} for node in (m.gpt.net, m.sovits.net, m.hubert))
    tiny = compose_train([f"model={version}", "model/size=tiny", "pretrained=none", "data.file_id=x"])
    check_config(tiny)
    assert tiny.model.version == version and tiny.model.size == "tiny"
    assert tiny.model.sample_rate == (32000 if version == "v2" else 48000)
    assert _subset(tiny.model.gpt.net, TINY_GPT)
    assert tiny.model.hubert.hidden_size == tiny.model.sovits.net.ssl_dim == 32
    assert _subset(tiny.model.sovits.net, TINY_V2_SOVITS if version == "v2" else TINY_V4_SOVITS)
    assert ("vocoder" in tiny.model) == (version == "v4") and "sizes" not in tiny.model
    if version == "v4":
        assert tiny.model.vocoder.upsample_initial_channel == 32 and "segment_size" not in tiny.model.sovits.net
    # the order of the two overrides does not matter, and experiments pick the size the same way
    assert compose_train(["model/size=tiny", f"model={version}", "data.file_id=x"]).model == tiny.model


@pytest.mark.parametrize("version", ["v2Pro", "v2ProPlus"])
def test_v2pro_groups_build_the_official_and_tiny_networks(version):
    import torch
    from hydra.utils import instantiate

    from mockvox.models.sovits_v2 import SynthesizerTrn

    def shapes(net):
        return {k: tuple(v.shape) for k, v in net.state_dict().items()}

    cfg = compose_train([f"model={version}", "data.file_id=x"])
    assert cfg.model.size == "official" and cfg.model.sample_rate == 32000
    with torch.device("meta"):
        net, disc = instantiate(cfg.model.sovits.net), instantiate(cfg.model.sovits.discriminator)
        assert shapes(net) == shapes(SynthesizerTrn.official(version)) and len(disc.discriminators) == 8
    tiny = compose_train([f"model={version}", "model/size=tiny", "pretrained=none", "data.file_id=x"])
    assert _subset(tiny.model.sovits.net, {**TINY_V2_SOVITS, "gin_channels": 32, "version": version})
    assert instantiate(tiny.model.sovits.net).ge_to512.out_features == tiny.model.sovits.net.mrte_hidden


def test_the_old_size_forms_fail_clearly():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="model/tiny"):  # no longer an argv rewrite
        compose_train(["model=tiny", "data.file_id=x"])
    relabelled = compose_train(["model=v2", "model.size=tiny", "pretrained=none", "data.file_id=x"])
    with pytest.raises(ConfigError, match="model/size=tiny"):  # a label alone would train official-size networks
        check_config(relabelled)


@pytest.mark.parametrize(
    "group,options",
    [
        ("trainer", {
            "cpu": {"accelerator": "cpu", "devices": 1, "precision": "32-true"},
            "gpu": {"accelerator": "gpu", "devices": 1, "precision": "16-mixed", "log_every_n_steps": 1},
            "ddp": {"accelerator": "gpu", "devices": -1, "precision": "16-mixed",
                    "strategy": "ddp_find_unused_parameters_true"},
        }),
        ("logger", {"mlflow": {"enabled": True, "experiment_name": "mockvox"}, "none": {"enabled": False}}),
        ("debug", {
            "fdr": {"trainer": {"fast_dev_run": True}, "data": {"min_items": 0}},
            "overfit": {"trainer": {"overfit_batches": 1}, "data": {"min_items": 0},
                        "epochs": {"sovits": 20, "gpt": 20}},
        }),
        ("pretrained", {
            "official": {"name": "official", "hubert": "chinese-hubert-base", "bert": "chinese-roberta-wwm-ext-large",
                         "files": {"v4": {"gpt": "s1v3.ckpt"}}},
            "none": {"name": "none", "hubert": None, "bert": None, "files": {}},
        }),
        ("model", {
            "v2": {"version": "v2", "sample_rate": 32000, "size": "official", "sovits": {"train": {"c_mel": 45.0}}},
            "v4": {"version": "v4", "sample_rate": 48000, "size": "official", "sovits": {"train": {"lora_rank": 32}}},
            "v2Pro": {"version": "v2Pro", "sample_rate": 32000, "sovits": {"net": {"version": "v2Pro",
                      "gin_channels": 1024}, "discriminator": {"periods": [2, 3, 5, 7, 11, 17, 23]}}},
            "v2ProPlus": {"version": "v2ProPlus", "sovits": {"net": {"version": "v2ProPlus",
                          "upsample_initial_channel": 768}, "train": {"c_mel": 45.0}}},
        }),
        ("model/size", {
            "official": {"size": "official", "gpt": {"net": {"_target_": T2S}},
                         "sovits": {"net": {"_target_": V4_NET}}},
            "tiny": {"size": "tiny", "gpt": {"net": TINY_GPT}, "sovits": {"net": TINY_V4_SOVITS}},
        }),
    ],
)  # fmt: skip
def test_group_options_compose_to_their_values(group, options, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MOCKVOX_EXPERIMENT", raising=False)
    default = OmegaConf.to_container(compose_train(["data.file_id=x"]), resolve=True)
    for option, expected in options.items():
        cfg = compose_train([f"{group}={option}", "data.file_id=x"])
        node = cfg if group == "debug" else cfg[group.split("/")[0]]
        assert _subset(node, expected), f"{group}={option}: {OmegaConf.to_yaml(node)}"
        if group == "debug":  # a debug option changes nothing else
            plain = OmegaConf.to_container(cfg, resolve=True)
            assert plain["model"] == default["model"]  # the GPT settings included (model.gpt)
    if group == "logger":
        assert compose_train(["logger=none", "data.file_id=x"]).logger.keys() == {"enabled"}


def test_official_weights_do_not_fit_the_tiny_size():
    with pytest.raises(ConfigError, match="model/size=official"):
        check_config(compose_train(["model/size=tiny", "data.file_id=x"]))


def test_missing_pretrained_files_name_the_file_and_the_fix(tmp_path):
    cfg = compose_train(["model=v2", "data.file_id=x", f"paths.pretrained_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="mockvox pretrained download"):
        build_networks(cfg)


def test_tiny_networks_build_from_config_with_a_matching_hubert():
    cfg = compose_train(["experiment=demo", "data.file_id=x"])
    nets = build_networks(cfg)
    assert nets.hubert.hidden_size == cfg.model.sovits.net.ssl_dim and nets.bert is None
    assert nets.discriminator is not None and nets.gpt.config.num_layers == 2
    import numpy as np

    assert np.prod(cfg.model.sovits.net.upsample_rates) == 640  # the 32 kHz hop


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


# ---------------------------------------------------------------------------------------- documented overrides

TINY_V2 = {"version": "v2", "size": "tiny", "sample_rate": 32000, "gpt": {"net": TINY_GPT},
           "sovits": {"net": TINY_V2_SOVITS}}  # fmt: skip
TINY_V4 = {"version": "v4", "size": "tiny", "sample_rate": 48000, "gpt": {"net": TINY_GPT},
           "sovits": {"net": TINY_V4_SOVITS}}  # fmt: skip
OFFICIAL_V2 = {"version": "v2", "size": "official", "gpt": {"net": {"_target_": T2S}},
               "sovits": {"net": {"_target_": V2_NET}}, "hubert": {"_target_": HUBERT}}  # fmt: skip
DOCUMENTED = [  # README / conf comments: the overrides and what they must compose to
    (["model=v2", "model/size=tiny", "pretrained=none"], {"model": TINY_V2, "pretrained": {"name": "none"}}),
    (["model/size=tiny", "model=v4", "pretrained=none"], {"model": TINY_V4}),
    (["experiment=demo"], {"model": TINY_V2, "pretrained": {"name": "none"}, "epochs": {"sovits": 4, "gpt": 4}}),
    (["experiment=demo", "model=v4"], {"model": TINY_V4, "pretrained": {"name": "none"}}),
    (["experiment=demo", "model/size=official", "pretrained=official"], {"model": OFFICIAL_V2}),
    (["experiment=tiny_v4"], {"model": {**TINY_V4, "sovits": {**TINY_V4["sovits"], "train": {"lora_rank": 4}}},
                              "epochs": {"sovits": 1}}),
    (["experiment=v2_finetune"], {"model": OFFICIAL_V2, "epochs": {"sovits": 8, "gpt": 15}}),
    (["experiment=v4_lora"], {"model": {"version": "v4", "size": "official"}, "epochs": {"sovits": 2, "gpt": 8}}),
    (["model=v2", "epochs.sovits=8", "epochs.gpt=15", "trainer=gpu", "trainer.precision=bf16-mixed"],
     {"model": OFFICIAL_V2, "epochs": {"sovits": 8, "gpt": 15}, "trainer": {"accelerator": "gpu",
                                                                             "precision": "bf16-mixed"}}),
    (["model/gpt/scheduler=warmup_cosine", "model.gpt.optimizer.lr=0.005"],
     {"model": {"gpt": {"scheduler": {"_target_": "mockvox.train.optim.warmup_cosine", "peak": 0.005,
                                      "warmup_steps": 2000}, "optimizer": {"lr": 0.005}}}}),
    (["model=v2", "model.sovits.optimizer.lr=2e-4", "model.sovits.train.c_mel=40", "model.sovits.data.batch_size=8"],
     {"model": {"sovits": {"optimizer": {"lr": 2e-4}, "train": {"c_mel": 40}, "data": {"batch_size": 8}}}}),
    (["model.gpt.data.max_sec=30", "model.gpt.data.min_ps_ratio=2", "model.gpt.data.max_ps_ratio=40",
      "data.denoise=false"],
     {"model": {"gpt": {"data": {"max_sec": 30, "min_ps_ratio": 2, "max_ps_ratio": 40}}}, "data": {"denoise": False}}),
]  # fmt: skip


@pytest.mark.parametrize("overrides,expected", DOCUMENTED)
def test_documented_overrides_compose_to_what_they_say(overrides, expected):
    cfg = compose_train([*overrides, "data.file_id=x"])
    assert _subset(cfg, expected), OmegaConf.to_yaml({k: cfg[k] for k in expected})
    check_config(cfg)


@pytest.mark.parametrize("overrides", [DOCUMENTED[0][0], DOCUMENTED[3][0], DOCUMENTED[5][0]])
def test_the_hydra_entry_point_composes_the_same_config(overrides, tmp_path):
    import subprocess
    import sys

    import yaml

    cmd = [sys.executable, "-m", "mockvox.train", *overrides, "data.file_id=x", "--cfg", "job", "--resolve"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    job = yaml.safe_load(proc.stdout)
    ours = OmegaConf.to_container(compose_train([*overrides, "data.file_id=x"]), resolve=True)
    for key in ("model", "pretrained", "epochs", "data"):
        if key == "pretrained":
            job[key].pop("dir"), ours[key].pop("dir")  # made absolute by compose()
        assert job[key] == ours[key], key


def test_a_hydra_sweep_over_version_and_size_composes_every_job():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    line = ["model=v2,v4", "model/size=tiny,official", "pretrained=none", "data.file_id=x"]
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(line), None)
    models = [compose_train(list(job)).model for job in jobs]
    assert sorted((m.version, m.size) for m in models) == [("v2", "official"), ("v2", "tiny"), ("v4", "official"),
                                                           ("v4", "tiny")]  # fmt: skip
    for m in models:
        official = {"sovits": {"net": {"_target_": {"v2": V2_NET, "v4": V4_NET}[m.version]}}}
        assert _subset(m, {"v2": TINY_V2, "v4": TINY_V4}[m.version] if m.size == "tiny" else official)


@pytest.mark.parametrize(
    "override,new",
    [
        ("gpt_train.max_sec=30", "model.gpt.data.max_sec"),
        ("gpt_train.epochs=3", "model.gpt.train.epochs"),
        ("gpt_train.optimizer.lr=0.02", "model.gpt.optimizer.lr"),
        ("gpt_train.scheduler.name=warmup_cosine", "model/gpt/scheduler=official|warmup_cosine"),
        ("gpt_train.scheduler.lr=0.001", "model.gpt.scheduler.gamma"),
        ("model.sovits_train.lr=2e-4", "model.sovits.optimizer.lr"),
        ("model.sovits_train.lr_decay=0.99", "model.sovits.scheduler.gamma"),
        ("model.sovits_train.batch_size=8", "model.sovits.data.batch_size"),
        ("model.sovits_train.lora_rank=16", "model.sovits.train.lora_rank"),
        ("model.sovits.segment_size=12", "model.sovits.net.segment_size"),
        ("+model.gpt.num_layers=4", "model.gpt.net.num_layers"),
    ],
)
def test_an_earlier_key_names_its_new_place(override, new):
    with pytest.raises(ConfigError, match=re.escape(new)):
        compose_train([override, "data.file_id=x"])


def _earlier_layout(new: dict, scheduler: dict) -> dict:
    """``new`` (a composed demo config) as the training config of a voice trained before the keys moved."""
    m = new["model"]
    nets = {"gpt": m["gpt"]["net"], "sovits": m["sovits"]["net"], "hubert": m["hubert"]}
    sizes = {k: {n: v for n, v in node.items() if n != "_target_"} for k, node in nets.items()}
    model = {"size": m["size"], "version": m["version"], "sample_rate": m["sample_rate"], **sizes,
             "sovits_train": {"epochs": 100, "batch_size": 32, "lr": 2e-4, "betas": [0.8, 0.99], "eps": 1e-9,
                              "lr_decay": 0.999875, "text_low_lr_rate": 0.4, "c_mel": 40.0, "c_kl": 1.0}}  # fmt: skip
    gpt_train = {"epochs": 20, "batch_size": 4, "accumulate": 1, "dpo": False, "dpo_beta": 0.2,
                 "optimizer": m["gpt"]["optimizer"], "scheduler": scheduler, "max_sec": 30, "min_ps_ratio": 3,
                 "max_ps_ratio": 25}  # fmt: skip
    return {**{k: v for k, v in new.items() if k != "model"}, "model": model, "gpt_train": gpt_train}


@pytest.mark.parametrize("name", ["constant", "warmup_cosine"])
def test_a_config_of_the_earlier_layout_is_upgraded(name):
    from mockvox.train.config import upgrade_train_config

    choice = {"constant": "official", "warmup_cosine": "warmup_cosine"}[name]
    overrides = ["experiment=demo", "data.file_id=x", f"model/gpt/scheduler={choice}", "model.sovits.optimizer.lr=2e-4",
                 "model.sovits.train.c_mel=40", "model.gpt.data.max_sec=30"]  # fmt: skip
    if name == "warmup_cosine":
        overrides.append("model.gpt.scheduler.warmup_steps=100")
    new = OmegaConf.to_container(compose_train(overrides))
    scheduler = {"name": name, "lr": 0.002, "lr_init": 1e-5, "lr_end": 1e-4, "warmup_steps": 100, "total_steps": 40000}
    old = _earlier_layout(new, scheduler)
    with pytest.raises(ConfigError, match="upgrade_train_config"):
        check_config(OmegaConf.create(old))
    upgraded = upgrade_train_config(old)
    check_config(upgraded)
    assert OmegaConf.to_container(upgraded) == new
    assert OmegaConf.to_container(upgrade_train_config(new)) == new  # the current layout stays as it is


def _dvc_params(tmp_path, overrides: list[str]) -> dict:
    """What ``dvc exp run -S ...`` writes to params.yaml (DVC's own Hydra composition of conf/params.yaml)."""
    import yaml
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / f"params-{len(list(tmp_path.iterdir()))}.yaml"
    compose_and_dump(out, str(CONF), None, "params", str(tmp_path), overrides)
    return yaml.safe_load(out.read_text())


def test_dvc_exp_run_set_params_select_version_and_size(tmp_path, monkeypatch):
    from dvc.utils.hydra import get_hydra_sweeps

    for var in ("MLFLOW_TRACKING_URI", "MOCKVOX_ROOT", "MOCKVOX_DATA", "MOCKVOX_EXPERIMENT"):
        monkeypatch.delenv(var, raising=False)
    assert _subset(_dvc_params(tmp_path, [])["model"], TINY_V2)  # the DVC default: experiment=demo
    assert _subset(_dvc_params(tmp_path, ["model=v4"])["model"], TINY_V4)
    official = _dvc_params(tmp_path, ["model/size=official", "pretrained=official"])
    assert _subset(official, {"model": OFFICIAL_V2, "pretrained": {"name": "official"}})
    assert _subset(_dvc_params(tmp_path, ["experiment=tiny_v4"])["model"], TINY_V4)
    sweeps = get_hydra_sweeps({"params.yaml": ["model=v2,v4", "model/size=tiny"]})
    assert len(sweeps) == 2
    versions = {_dvc_params(tmp_path, s["params.yaml"])["model"]["version"] for s in sweeps}
    assert versions == {"v2", "v4"}


def test_params_yaml_is_the_dvc_composition_of_conf_params(tmp_path, monkeypatch):
    import yaml

    for var in ("MLFLOW_TRACKING_URI", "MOCKVOX_ROOT", "MOCKVOX_DATA", "MOCKVOX_EXPERIMENT"):
        monkeypatch.delenv(var, raising=False)
    committed = yaml.safe_load((CONF.parent / "params.yaml").read_text())
    assert committed == _dvc_params(tmp_path, []), "regenerate params.yaml from conf/params.yaml (see its header)"


# ---------------------------------------------------------------------------- values reach the built objects


def test_gpt_filters_from_the_config_reach_the_dataset(tmp_path):
    from mockvox.train.build import gpt_datamodule
    from tests.data.test_datasets import write_gpt_folder

    folder = write_gpt_folder(tmp_path / "f", {"ok": (10, 50), "fast": (30, 25), "long": (300, 1351)})

    def kept(*overrides: str) -> set[str]:
        cfg = compose_train(["experiment=demo", "data.file_id=x", *overrides])
        data = gpt_datamodule(cfg, folder)
        return set(data.build(0).unique_keys)

    assert kept() == {"ok"}  # official: 3..25 phones/s, at most 54 s
    assert kept("model.gpt.data.max_ps_ratio=40") == {"ok", "fast"}
    assert kept("model.gpt.data.max_sec=60") == {"ok", "long"}  # 1351 tokens = 54.04 s
    assert kept("model.gpt.data.min_ps_ratio=6", "model.gpt.data.max_ps_ratio=40") == {"fast"}  # "ok": 5 phones/s


@pytest.mark.parametrize(
    "overrides,frames",
    [
        (["experiment=demo"], 8),
        (["experiment=demo", "model.sovits.net.segment_size=12"], 12),
        (["experiment=tiny_v4"], 0),
    ],
)
def test_the_sovits_collate_pads_to_the_decoder_segment(overrides, frames, tmp_path):
    from mockvox.train.build import sovits_datamodule

    cfg = compose_train([*overrides, "data.file_id=x"])
    nets = build_networks(cfg, with_bert=False)
    data = sovits_datamodule(cfg, nets, tmp_path)
    assert data.collate.keywords["min_frames"] == frames
    if cfg.model.version == "v2":
        assert nets.sovits.segment_size == frames


@pytest.mark.parametrize("experiment", ["demo", "tiny_v4"])
def test_the_spectrogram_settings_come_from_model_spectrogram(experiment, tmp_path):
    from mockvox.audio.spectrogram import OFFICIAL, Spectrogram
    from mockvox.train.build import sovits_datamodule, sovits_module

    cfg = compose_train([f"experiment={experiment}", "data.file_id=x"])
    assert Spectrogram.from_mapping(cfg.model.spectrogram) == OFFICIAL  # the official s2.json data for v2 and v4
    cfg.model.spectrogram.hop_length = 320
    nets = build_networks(cfg, with_bert=False)
    data = sovits_datamodule(cfg, nets, tmp_path)
    assert data.collate.keywords["hop_length"] == 320 and data.dataset_kwargs["spectrogram"].hop_length == 320
    if cfg.model.version == "v2":
        with pytest.raises(ValueError, match="hop_size is 320"):  # the loss mel follows it: the tiny net upsamples 640
            sovits_module(cfg, nets)
