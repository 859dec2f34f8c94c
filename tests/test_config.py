"""Command lines: which arguments are Hydra overrides (on the real ``mockvox`` parser) and what they compose to."""

from __future__ import annotations

import pytest

from mockvox import cli
from mockvox.config import compose, is_override, split_overrides
from mockvox.infer import cli as infer_cli
from mockvox.train import cli as train_cli


@pytest.fixture()
def parsed(monkeypatch):
    """``parse(argv)`` -> the argparse namespace ``mockvox.cli.main`` hands the command (nothing is run)."""
    seen = []
    for module, name in ((infer_cli, "cmd_inference"), (train_cli, "cmd_train"), (cli, "cmd_upload")):
        monkeypatch.setattr(module, name, seen.append)

    def parse(argv: list[str]):
        assert cli.main(argv) == 0
        return seen.pop()

    return parse


@pytest.mark.parametrize(
    "target",
    ["E=mc2 is famous", "E=mc2", "a=b", "x = y", "1+1=2", "Größe=10", "rate=50%", "http://a.b/?q=1"],
)
def test_texts_with_an_equals_sign_stay_texts(parsed, target):
    args = parsed(["inference", "m-1", "ref.wav", "prompt=a text", target, "logger.tracking_uri=http://h:5000"])
    assert (args.prompt_text, args.target_text) == ("prompt=a text", target)
    assert args.overrides == ["logger.tracking_uri=http://h:5000"]


def test_after_a_double_dash_nothing_is_an_override(parsed):
    args = parsed(["inference", "m-1", "ref.wav", "seed=1", "--targetLanguage", "en", "paths.data_dir=/d", "--",
                   "seed=2 is a prompt", "name=Bob says hi"])  # fmt: skip
    assert (args.prompt_text, args.target_text) == ("seed=2 is a prompt", "name=Bob says hi")
    assert args.overrides == ["seed=1", "paths.data_dir=/d"] and args.targetLanguage == "en"


def test_documented_overrides_are_overrides_anywhere_on_the_line(parsed):
    args = parsed(["upload", "asr=gpu", "talk.mp3", "slicer.max_length_ms=15000", "--language", "en",
                   "denoiser.stationary=false"])  # fmt: skip
    assert args.path == "talk.mp3" and args.language == "en"
    assert args.overrides == ["asr=gpu", "slicer.max_length_ms=15000", "denoiser.stationary=false"]
    cfg = compose("prepare", args.overrides)
    assert cfg.asr.device == "cuda" and cfg.slicer.max_length_ms == 15000 and cfg.denoiser.stationary is False
    args = parsed(["train", "FILE", "--version", "v2", "model/size=tiny", "pretrained=none", "+trainer.max_time=9",
                   "~callbacks.samples", "++seed=3", "epochs.gpt=2", "name=cli-voice"])  # fmt: skip
    assert args.file_id == "FILE" and args.version == "v2"
    assert args.overrides == ["model/size=tiny", "pretrained=none", "+trainer.max_time=9", "~callbacks.samples",
                              "++seed=3", "epochs.gpt=2", "name=cli-voice"]  # fmt: skip
    cfg = compose("train", ["data.file_id=FILE", f"model={args.version}", *args.overrides])
    assert cfg.model.version == "v2" and cfg.model.size == "tiny" and cfg.model.sovits.net.segment_size == 8
    assert cfg.trainer.max_time == 9 and "samples" not in cfg.callbacks and cfg.seed == 3 and cfg.epochs.gpt == 2


@pytest.mark.parametrize(
    "arg,expected",
    [
        ("asr=gpu", True),
        ("model/size=tiny", True),
        ("model=v2", True),
        ("experiment=demo", True),
        ("+trainer.max_time=9", True),
        ("++seed=3", True),
        ("~logger.registry_uri=x", True),
        ("~callbacks.samples", True),
        ("~wave", False),
        ("hydra.job.chdir=true", True),
        ("model.gpt.optimizer.lr=0.01", True),
        ("pretrained@p=none", True),
        ("E=mc2 is famous", False),
        ("target=text", False),
        ("Model=v2", False),
        ("model =v2", False),
        ("=x", False),
        ("models:/voice@prod", False),
        ("ref.wav", False),
    ],
)
def test_an_override_key_names_a_config_group_or_key(arg, expected):
    assert is_override(arg) is expected


def test_split_keeps_the_order_of_both_parts():
    rest, overrides = split_overrides(["a", "seed=1", "E=mc2", "asr=cpu", "--", "asr=gpu"])
    assert rest == ["a", "E=mc2", "--", "asr=gpu"] and overrides == ["seed=1", "asr=cpu"]


def test_an_override_the_command_cannot_take_is_one_clear_error(capsys):
    assert cli.main(["models", "callbacks.progress=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "callbacks.progress" in err[-1]
    assert not any("Traceback" in line for line in err)
