"""Pretrained download/check against a local fake hub (no network)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from mockvox import pretrained as pt
from mockvox.checkpoints import write_checkpoint


def make_fake_hub(root: Path, files: list[str]) -> Path:
    for i, f in enumerate(files):
        path = root / f
        path.parent.mkdir(parents=True, exist_ok=True)
        if f.endswith(".json"):
            path.write_text(json.dumps({"name": f}))
        else:
            write_checkpoint({"weight": {"w": torch.full((64 + i,), float(i))}}, path)
    return root


@pytest.fixture
def hub(tmp_path) -> Path:
    return make_fake_hub(tmp_path / "hub", pt.required_files("all"))


def test_download_fetches_and_verifies_a_version(hub, tmp_path):
    root = tmp_path / "pre"
    rows = pt.download("v2", root, pt.FolderSource(hub), log=lambda _: None)
    assert [r.file for r in rows] == pt.required_files("v2") and all(r.verified for r in rows)
    for f in pt.required_files("v2"):
        assert (root / f).read_bytes() == (hub / f).read_bytes()
    assert not (root / "s1v3.ckpt").exists()  # v2Pro/v4-only file not fetched
    present, missing = pt.check("v2", root)
    assert missing == [] and all(s.verified for s in present)
    _, missing_all = pt.check("all", root)
    others = {f for v, files in pt.VERSION_FILES.items() if v != "v2" for f in files}
    assert {s.file for s in missing_all} == others


def test_download_resumes_a_partial_copy_and_replaces_broken_files(hub, tmp_path):
    root = tmp_path / "pre"
    name = pt.VERSION_FILES["v4"][0]
    data = (hub / name).read_bytes()
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / (name + ".incomplete")).write_bytes(data[: len(data) // 2])
    broken = pt.VERSION_FILES["v4"][1]
    (root / broken).parent.mkdir(parents=True, exist_ok=True)
    (root / broken).write_bytes(b"PK-not-really")
    logs: list[str] = []
    pt.download("v4", root, pt.FolderSource(hub, chunk=7), log=logs.append)
    assert (root / name).read_bytes() == data and not (root / (name + ".incomplete")).exists()
    assert (root / broken).read_bytes() == (hub / broken).read_bytes()
    assert any("fetching it again" in line for line in logs)


def test_missing_upstream_file_is_reported_with_where_to_put_it(hub, tmp_path):
    gone = pt.VERSION_FILES["v2"][1]
    (hub / gone).unlink()
    root = tmp_path / "pre"
    with pytest.raises(pt.PretrainedMissing) as err:
        pt.download("v2", root, pt.FolderSource(hub), log=lambda _: None)
    msg = str(err.value)
    assert gone in msg and str(root.resolve()) in msg and "HF_ENDPOINT" in msg and "pretrained check" in msg
    present, _ = pt.check("v2", root)
    assert len(present) == len(pt.required_files("v2")) - 1  # everything else was fetched


class FakeHub:
    """Stands in for huggingface_hub: serves the fake hub folder, or fails like an offline machine."""

    def __init__(self, folder: Path, offline: bool = False):
        self.folder, self.offline, self.calls = folder, offline, []

    def get_paths_info(self, repo_id, paths, revision=None):
        if self.offline:
            raise ConnectionError("offline")
        return [argparse.Namespace(path=p, size=(self.folder / p).stat().st_size) for p in paths]

    def hf_hub_download(self, repo_id, filename, revision=None, local_dir=None):
        self.calls.append((repo_id, filename))
        if self.offline:
            raise ConnectionError("offline")
        dest = Path(local_dir) / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((self.folder / filename).read_bytes())
        return str(dest)


def _patch_hub(monkeypatch, fake: FakeHub) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)


def test_hub_source_uses_huggingface_hub(hub, tmp_path, monkeypatch):
    fake = FakeHub(hub)
    _patch_hub(monkeypatch, fake)
    pt.download("v4", tmp_path / "pre", log=lambda _: None)
    assert {c[0] for c in fake.calls} == {pt.REPO_ID} and len(fake.calls) == len(pt.required_files("v4"))
    fake.calls.clear()
    pt.download("v4", tmp_path / "pre", log=lambda _: None)  # verified files are not fetched again
    assert fake.calls == []


def test_offline_download_lists_every_missing_file(hub, tmp_path, monkeypatch):
    _patch_hub(monkeypatch, FakeHub(hub, offline=True))
    with pytest.raises(pt.PretrainedMissing) as err:
        pt.download("v2", tmp_path / "pre", log=lambda _: None)
    assert all(f in str(err.value) for f in pt.required_files("v2"))


def test_cli_commands(hub, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    pt.register_cli(parser.add_subparsers(dest="command"))
    root = str(tmp_path / "pre")
    args = parser.parse_args(["pretrained", "check", "--version", "v2", "--dir", root])
    with pytest.raises(pt.PretrainedMissing):
        args.func(args)
    args = parser.parse_args(["pretrained", "download", "--version", "v2", "--dir", root, "--from", str(hub)])
    args.func(args)
    args = parser.parse_args(["pretrained", "check", "--version", "v2", "--dir", root])
    args.func(args)
    out = capsys.readouterr().out
    assert "verified" in out and "all 9 files for v2 present" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["pretrained", "download", "--version", "v3"])


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCKVOX_PRETRAINED", str(tmp_path))
    assert pt.default_dir() == tmp_path
    monkeypatch.delenv("MOCKVOX_PRETRAINED")
    monkeypatch.setenv("MOCKVOX_HOME", str(tmp_path))
    monkeypatch.setenv("MOCKVOX_ROOT", str(tmp_path / "project"))  # the project folder no longer holds models
    assert pt.default_dir() == tmp_path / "pretrained"
    monkeypatch.chdir(tmp_path)
    assert pt.Store("relative").root == tmp_path / "relative"
    with pytest.raises(ValueError, match="accepted"):
        pt.required_files("v9")


@pytest.mark.parametrize("version", ["v2Pro", "v2ProPlus"])
def test_pro_versions_need_their_generator_the_sv_model_and_the_v4_gpt(hub, tmp_path, version):
    suffix = version.removeprefix("v2")
    files = pt.required_files(version)
    assert files[len(pt.COMMON) :] == [
        "s1v3.ckpt", f"v2Pro/s2Gv2{suffix}.pth", f"v2Pro/s2Dv2{suffix}.pth", "sv/pretrained_eres2netv2w24s4ep4.ckpt"
    ]  # fmt: skip
    assert pt.required_files("all").count("s1v3.ckpt") == 1  # shared by v2Pro, v2ProPlus and v4, listed once
    rows = pt.download(version, tmp_path / "pre", pt.FolderSource(hub), log=lambda _: None)
    assert [r.file for r in rows] == files and all(r.verified for r in rows)
    parser = argparse.ArgumentParser()
    pt.register_cli(parser.add_subparsers())
    assert parser.parse_args(["pretrained", "check", "--version", version]).version == version
