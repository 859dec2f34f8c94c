"""Every dataset state is a DVC version: clean status, history, push to and pull from the local remote."""

import shutil

import pytest

from mockvox.data.asr import AsrConfig
from mockvox.data.pipeline import DatasetPipeline, PrepareConfig
from mockvox.data.store import DatasetStore
from mockvox.data.versioning import DatasetVersioner
from tests.conftest import SAMPLES


@pytest.fixture()
def pipeline(project, whisper_dir):
    cfg = PrepareConfig(asr=AsrConfig(model="tiny.en", models_dir=str(whisper_dir)))
    return DatasetPipeline(DatasetStore(project / "data"), cfg)


def test_each_operation_is_a_clean_dvc_version(pipeline):
    up = pipeline.upload(SAMPLES / "voice_en.ogg", "en", denoise_audio=False)
    versioner = pipeline.versioner
    assert versioner.repo_root == pipeline.store.root.parent
    assert versioner.status(up.file_id) == {}
    assert versioner.version(up.file_id) == up.version and len(up.version) == 32
    added = pipeline.add(up.file_id, SAMPLES / "voice_en.ogg")
    revised = pipeline.revise(up.file_id, [{"key": added.new_keys[0], "text": "Hello."}])
    assert versioner.status(up.file_id) == {}
    history = [v["version"] for v in pipeline.store.versions(up.file_id)]
    assert history == [up.version, added.version, revised.version] and len(set(history)) == 3
    # a hand edit outside the pipeline shows up as a change against the recorded version
    (pipeline.store.output_json(up.file_id)).write_text("{}")
    assert versioner.status(up.file_id) != {}


def test_push_and_pull_restore_a_lost_dataset(pipeline):
    up = pipeline.upload(SAMPLES / "voice_en.ogg", "en", denoise_audio=True)
    versioner = pipeline.versioner
    assert versioner.push(up.file_id) >= 4
    originals = {p: p.read_bytes() for p in pipeline.store.sliced_dir(up.file_id).glob("*.wav")}
    shutil.rmtree(pipeline.store.sliced_dir(up.file_id))
    shutil.rmtree(pipeline.store.asr_dir(up.file_id))
    cache = versioner.repo_root / ".dvc" / "cache"
    shutil.rmtree(cache)  # force the content to come from the remote
    versioner.pull(up.file_id)
    assert {p: p.read_bytes() for p in pipeline.store.sliced_dir(up.file_id).glob("*.wav")} == originals
    assert pipeline.store.read_output(up.file_id)["language"] == "en"
    assert versioner.status(up.file_id) == {}


def test_a_data_root_outside_any_dvc_repo_gets_its_own(tmp_path):
    store = DatasetStore(tmp_path / "standalone" / "data")
    versioner = DatasetVersioner(store)
    assert versioner.repo_root == store.root
    assert (store.root / ".dvc" / "config").read_text().count("remote") >= 2
