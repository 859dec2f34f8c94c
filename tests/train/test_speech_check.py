"""A training on too little usable speech stops before any model is built or feature extracted."""

from __future__ import annotations

import pytest

from mockvox.data.datasets import NotEnoughSpeech, require_speech
from mockvox.train import run, stages
from mockvox.train.config import compose_train


def _no_work(*args, **kwargs):
    raise AssertionError("training started work on a dataset without enough speech")


def test_too_little_speech_stops_before_any_work(dataset, monkeypatch, tmp_path):
    data_dir, file_id, pipe = dataset
    monkeypatch.setattr(run, "build_networks", _no_work)
    monkeypatch.setattr(stages, "prepare_features", _no_work)
    cfg = compose_train(["experiment=demo", f"paths.data_dir={data_dir}", f"paths.features_dir={tmp_path}/features",
                         f"data.file_id={file_id}", "data.min_speech_seconds=60", "logger=none"])  # fmt: skip
    with pytest.raises(NotEnoughSpeech) as err:
        run.train(cfg)
    message = str(err.value)
    assert f"dataset {file_id} has 1" in message and "s of usable speech (3 of 3 slices" in message
    assert "training needs at least 60 s (data.min_speech_seconds)" in message and "mockvox add" in message
    assert not (tmp_path / "features").exists()


def test_empty_transcripts_do_not_count(dataset):
    data_dir, file_id, pipe = dataset
    results = pipe.store.read_output(file_id)["results"]
    audio_dir = pipe.store.sliced_dir(file_id)
    full = require_speech(file_id, results, audio_dir, 10)
    flagged = [{"key": r["key"], "text": "", "empty": True} for r in results[:2]] + results[2:]
    with pytest.raises(NotEnoughSpeech, match=r"\(1 of 3 slices .*give its 2 slice\(s\) without a transcript a text"):
        require_speech(file_id, flagged, audio_dir, full - 0.1)
