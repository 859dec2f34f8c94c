"""Atomic writes: the old version stays whole when a write fails, and no staging leftovers remain."""

from __future__ import annotations

import os
import stat

import pytest

from mockvox.atomic import atomic_dir, atomic_file, write_text


def test_file_replaced_only_on_success(tmp_path) -> None:
    target = tmp_path / "deep" / "a.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["a.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # an ordinary file, not a private temp file


def test_folder_swapped_in_whole(tmp_path) -> None:
    target = tmp_path / "voice"
    with atomic_dir(target) as staging:
        (staging / "x").write_text("1")
    with pytest.raises(ValueError), atomic_dir(target) as staging:
        (staging / "x").write_text("2")
        raise ValueError("bad weights")
    assert (target / "x").read_text() == "1"
    with atomic_dir(target) as staging:
        (staging / "y").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["y"]
    assert [p.name for p in tmp_path.iterdir()] == ["voice"]
