"""upload / add / revise on the real pipeline (real slicer, denoiser, Whisper tiny.en, DVC)."""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from mockvox.audio.io import AudioError
from mockvox.data.asr import AsrConfig
from mockvox.data.pipeline import DatasetPipeline, PrepareConfig, RevisionError
from mockvox.data.store import DatasetNotFound, DatasetStore
from tests.conftest import SAMPLES, tone_bursts

KEY = re.compile(r"^\d{10}_\d{10}$")


@pytest.fixture()
def pipeline(project, whisper_dir):
    cfg = PrepareConfig(asr=AsrConfig(model="tiny.en", models_dir=str(whisper_dir)))
    return DatasetPipeline(DatasetStore(project / "data"), cfg)


@pytest.fixture()
def uploaded(pipeline):
    return pipeline.upload(SAMPLES / "voice_en.ogg", "en", denoise_audio=True)


def test_upload_writes_the_mockvox_layout(pipeline, uploaded):
    store = pipeline.store
    output = store.read_output(uploaded.file_id)
    assert output["language"] == "en" and output["denoised"] is True
    keys = [r["key"] for r in output["results"]]
    assert len(keys) == 3 and all(KEY.match(k) for k in keys)
    for key in keys:
        raw, sr = sf.read(store.sliced_dir(uploaded.file_id) / f"{key}.wav", dtype="int16")
        clean, sr2 = sf.read(store.denoised_dir(uploaded.file_id) / f"{key}.wav", dtype="int16")
        start, end = map(int, key.split("_"))
        assert sr == sr2 == 32000 and len(raw) == len(clean) == end - start
    assert "quick brown fox" in output["results"][1]["text"].lower()
    assert (store.upload_dir() / f"{uploaded.file_id}.ogg").is_file()
    assert not any(store.root.joinpath(".staging").iterdir())


def test_no_denoise_keeps_raw_slices_only(pipeline):
    result = pipeline.upload(SAMPLES / "voice_en.ogg", "en", denoise_audio=False)
    assert pipeline.store.read_output(result.file_id)["denoised"] is False
    assert not pipeline.store.denoised_dir(result.file_id).exists()
    assert pipeline.store.audio_dir(result.file_id) == pipeline.store.sliced_dir(result.file_id)


def test_add_appends_with_keys_that_never_collide(pipeline, uploaded):
    before = pipeline.store.read_output(uploaded.file_id)["results"]
    result = pipeline.add(uploaded.file_id, SAMPLES / "voice_en.ogg")
    after = pipeline.store.read_output(uploaded.file_id)["results"]
    assert after[: len(before)] == before
    new = after[len(before) :]
    assert len(new) == 3 and result.new_keys == [r["key"] for r in new]
    assert len({r["key"] for r in after}) == 6
    first_new_start = int(new[0]["key"].split("_")[0])
    assert first_new_start >= max(int(r["key"].split("_")[1]) for r in before)  # placed after the first source
    info = pipeline.store.read_dataset(uploaded.file_id)
    assert [s["offset"] for s in info["sources"]] == [0, info["sources"][0]["samples"]]
    assert len(list(pipeline.store.sliced_dir(uploaded.file_id).glob("*.wav"))) == 6
    assert result.version != uploaded.version


def test_revision_sets_given_texts_and_keeps_the_rest(pipeline, uploaded):
    before = pipeline.store.read_output(uploaded.file_id)["results"]
    key = before[0]["key"]
    result = pipeline.revise(uploaded.file_id, [{"key": key, "text": "Hello world, this is a test."}])
    after = pipeline.store.read_output(uploaded.file_id)["results"]
    assert after[0] == {"key": key, "text": "Hello world, this is a test."}
    assert after[1:] == before[1:]
    assert result.version != uploaded.version


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([{"key": "0000000000_0000000001", "text": "x"}], "unknown key"),
        ({"key": "a", "text": "b"}, "JSON array"),
        ([{"key": "k"}], "invalid item"),
        ([{"key": "../../etc", "text": "x"}], "invalid slice key"),
    ],
)
def test_bad_revisions_change_nothing(pipeline, uploaded, payload, message):
    path = pipeline.store.output_json(uploaded.file_id)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        pipeline.revise(uploaded.file_id, payload)
    assert path.read_bytes() == before
    assert len(pipeline.store.versions(uploaded.file_id)) == 1


def test_removing_a_slice_is_explicit(pipeline, uploaded):
    keys = [r["key"] for r in pipeline.store.read_output(uploaded.file_id)["results"]]
    pipeline.revise(uploaded.file_id, [], remove=[keys[1]])
    assert [r["key"] for r in pipeline.store.read_output(uploaded.file_id)["results"]] == [keys[0], keys[2]]
    assert not (pipeline.store.sliced_dir(uploaded.file_id) / f"{keys[1]}.wav").exists()
    assert not (pipeline.store.denoised_dir(uploaded.file_id) / f"{keys[1]}.wav").exists()
    with pytest.raises(RevisionError, match="unknown"):
        pipeline.revise(uploaded.file_id, [], remove=[keys[1]])


def _content(root):
    """Every file of the data root but the per-dataset lock files (empty, kept for the next operation)."""
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts}


def test_failed_add_leaves_the_dataset_intact(pipeline, uploaded, tmp_path, monkeypatch):
    store = pipeline.store
    snapshot = _content(store.root)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError):
        pipeline.add(uploaded.file_id, bad)

    def boom(*args, **kwargs):
        raise RuntimeError("ASR crashed")

    monkeypatch.setattr(pipeline.transcriber, "transcribe", boom)
    with pytest.raises(RuntimeError, match="ASR crashed"):
        pipeline.add(uploaded.file_id, SAMPLES / "voice_en.ogg")
    assert _content(store.root) == snapshot


def test_upload_rejects_bad_input_before_writing(pipeline, tmp_path, write_audio):
    silent = write_audio("silent.wav", np.zeros(32000 * 5, dtype=np.float32))
    with pytest.raises(AudioError, match="silent"):
        pipeline.upload(silent, "en")
    with pytest.raises(ValueError, match="unsupported language"):
        pipeline.upload(SAMPLES / "voice_en.ogg", "fr")
    with pytest.raises(DatasetNotFound):
        pipeline.add("20250522095117519601.e6abd9db.896806622ccb47a9ac1ee1669daf1938", SAMPLES / "voice_en.ogg")
    assert not pipeline.store.upload_dir().exists() or not any(pipeline.store.upload_dir().iterdir())


def test_manifest_lists_versions(pipeline, uploaded):
    pipeline.revise(uploaded.file_id, [{"key": uploaded.new_keys[0], "text": "Fixed."}])
    manifest = pipeline.store.manifest(uploaded.file_id)
    assert [v["operation"] for v in manifest["versions"]] == ["upload", "revision"]
    assert manifest["version"] == manifest["versions"][-1]["version"]
    assert json.dumps(manifest)  # serialisable as printed by `mockvox dataset`


def test_recordings_without_speech_are_rejected_and_nothing_is_written(pipeline, write_audio):
    store = pipeline.store
    short = write_audio("tone.wav", tone_bursts(32000, [("tone", 0.2)]))
    with pytest.raises(
        AudioError, match=r"tone.wav: 0.20 s of audio is shorter than the minimum useful length of 0.6 s"
    ):
        pipeline.upload(short, "en")
    tone = write_audio("long_tone.wav", tone_bursts(32000, [("tone", 2.0)]))
    with pytest.raises(AudioError, match=r"no speech recognised in the recording: .* 1 slice\(s\) \(2.0 s\)"):
        pipeline.upload(tone, "en")
    written = [p for p in store.root.rglob("*") if p.is_file()]
    assert written == [] and not store.root.joinpath("asr").exists()


def test_empty_transcripts_are_flagged_excluded_from_training_and_cleared_by_revision(pipeline, monkeypatch, tmp_path):
    from mockvox.data.datasets import usable_speech
    from mockvox.data.features import Extractors, extract_features
    from tests.data.test_features import tiny_hubert, tiny_sovits

    transcribe = pipeline.transcriber.transcribe
    calls = iter(range(100))
    monkeypatch.setattr(
        pipeline.transcriber, "transcribe", lambda a, lang: "" if next(calls) == 1 else transcribe(a, lang)
    )
    result = pipeline.upload(SAMPLES / "voice_en.ogg", "en", denoise_audio=False)
    results = pipeline.store.read_output(result.file_id)["results"]
    flagged = results[1]
    assert flagged == {"key": flagged["key"], "text": "", "empty": True}
    assert all(set(r) == {"key", "text"} and r["text"] for r in (results[0], results[2]))  # MockVox's format
    assert pipeline.store.manifest(result.file_id)["empty"] == [flagged["key"]]
    seconds, count = usable_speech(results, pipeline.store.sliced_dir(result.file_id))
    assert count == 2 and 4.0 < seconds < 12.0

    extractors = Extractors.create(tiny_hubert(), tiny_sovits("v2"))
    folder = extract_features(pipeline.store, result.file_id, extractors, tmp_path / "cache", use_denoised=False)
    meta = json.loads((folder / "meta.json").read_text())
    assert flagged["key"] not in meta["keys"] and "empty transcript" in meta["skipped"][flagged["key"]]
    assert flagged["key"] not in {e["key"] for e in json.loads((folder / "name2text.json").read_text())}

    pipeline.revise(result.file_id, [{"key": flagged["key"], "text": "The quick brown fox jumps over the lazy dog."}])
    revised = pipeline.store.read_output(result.file_id)["results"][1]
    assert revised == {"key": flagged["key"], "text": "The quick brown fox jumps over the lazy dog."}
    assert pipeline.store.manifest(result.file_id)["empty"] == []
    again = extract_features(pipeline.store, result.file_id, extractors, tmp_path / "cache", use_denoised=False)
    assert flagged["key"] in json.loads((again / "meta.json").read_text())["keys"]


def test_concurrent_changes_from_two_pipelines_are_all_kept(pipeline, uploaded):
    """Two processes' pipelines (an API revising, a worker adding) on one dataset: no change is lost."""
    import threading
    import time

    slow = DatasetPipeline(DatasetStore(pipeline.store.root), pipeline.cfg, pipeline.transcriber)
    commit = slow._commit

    def slow_commit(*args, **kwargs):  # holds its read of the dataset for a second before writing
        time.sleep(1.0)
        return commit(*args, **kwargs)

    slow._commit = slow_commit
    first, second = (r["key"] for r in uploaded.results[:2])
    worker = threading.Thread(
        target=slow.revise, args=(uploaded.file_id, [{"key": first, "text": "from the slow one"}])
    )
    worker.start()
    time.sleep(0.3)  # the slow revision has read the dataset and waits to write it
    pipeline.revise(uploaded.file_id, [{"key": second, "text": "from the quick one"}])
    worker.join()
    texts = {r["key"]: r["text"] for r in pipeline.store.read_output(uploaded.file_id)["results"]}
    assert texts[first] == "from the slow one" and texts[second] == "from the quick one"
    assert len(pipeline.store.versions(uploaded.file_id)) == 3  # the upload and both revisions
