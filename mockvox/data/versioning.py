"""DVC versioning of datasets: each state after upload / add / revision becomes a DVC-tracked version.

One ``dvc/{id}.dvc`` file per dataset lists its outputs (uploads, raw and denoised slices, ASR folder);
``dvc commit`` hashes them into the DVC cache, so every version's content stays retrievable and can be pushed
to the remote. The version id is a hash of the outputs' DVC hashes, readable back from the ``.dvc`` file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path

import filelock
import yaml

from mockvox import atomic
from mockvox.data.store import DatasetStore

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
DEFAULT_REMOTE = "local"


def find_repo_root(path: Path) -> Path | None:
    """The nearest directory at or above ``path`` holding a ``.dvc`` folder."""
    for candidate in [path, *path.parents]:
        if (candidate / ".dvc").is_dir():
            return candidate
    return None


def _commit(root: Path, dvc_path: Path, wait_s: float = 30.0) -> None:
    """``dvc commit`` of one .dvc file, retried while another program (a user's ``dvc``) holds DVC's lock."""
    from dvc.lock import LockError

    deadline = time.monotonic() + wait_s
    while True:
        repo = _open_repo(root)
        try:
            repo.commit(str(dvc_path), force=True)
            return
        except LockError:
            if time.monotonic() > deadline:
                raise
        finally:
            repo.close()
        time.sleep(0.5)


def _open_repo(root: Path, retries: int = 50):
    from dvc.lock import LockError
    from dvc.repo import Repo

    for attempt in range(retries):
        try:
            return Repo(str(root))
        except LockError:
            if attempt == retries - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


class DatasetVersioner:
    """Records dataset versions in the DVC repository that holds the data root (made if there is none)."""

    def __init__(self, store: DatasetStore, remote_url: str | None = None) -> None:
        self.store = store
        root = find_repo_root(store.root)
        if root is None:
            root = self.init_repo(store.root, remote_url or str(store.root.parent / f"{store.root.name}-dvc-remote"))
        self.repo_root = root
        self._lock: filelock.FileLock | None = None

    @staticmethod
    def init_repo(root: Path, remote_url: str) -> Path:
        """``dvc init`` (without git unless ``root`` is a git work tree) plus a default local remote."""
        from dvc.repo import Repo

        root.mkdir(parents=True, exist_ok=True)
        dvc_log = logging.getLogger("dvc")
        level = dvc_log.level
        dvc_log.setLevel(max(level, logging.WARNING))  # DVC announces the repository on stdout, which is for results
        try:
            repo = Repo.init(str(root), no_scm=not (root / ".git").exists())
        finally:
            dvc_log.setLevel(level)
        with repo.config.edit() as conf:
            conf["remote"][DEFAULT_REMOTE] = {"url": str(Path(remote_url).resolve())}
            conf["core"]["remote"] = DEFAULT_REMOTE
        repo.close()
        return root

    def dvc_file(self, file_id: str) -> Path:
        return self.store.root / "dvc" / f"{file_id}.dvc"

    def _outs(self, file_id: str) -> list[Path]:
        info = self.store.read_dataset(file_id)
        outs = [self.store.upload_dir() / src["upload"] for src in info["sources"]]
        outs += [self.store.sliced_dir(file_id), self.store.asr_dir(file_id)]
        if self.store.read_output(file_id)["denoised"]:
            outs.append(self.store.denoised_dir(file_id))
        return outs

    def locked(self) -> filelock.FileLock:
        """MockVox's own turn at the DVC repository, across processes: a change and its version record are made
        under it, so DVC's lock (which gives up after seconds) is never contended by MockVox itself."""
        if self._lock is None:  # one object: re-entered by record() inside a caller's turn
            folder = self.store.root / ".locks"
            folder.mkdir(parents=True, exist_ok=True)
            self._lock = filelock.FileLock(folder / "dvc.lock", timeout=600)
        return self._lock

    def record(self, file_id: str, operation: str) -> str:
        """Commit the dataset's current state to DVC and append it to the version history; returns the version."""
        dvc_path = self.dvc_file(file_id)
        dvc_path.parent.mkdir(parents=True, exist_ok=True)
        outs = [{"path": os.path.relpath(p, dvc_path.parent)} for p in self._outs(file_id)]
        atomic.write_text(dvc_path, yaml.safe_dump({"outs": outs}, sort_keys=False))
        with self.locked():
            _commit(self.repo_root, dvc_path)
        version = self.version(file_id)
        history = self.store.versions_file(file_id)
        history.parent.mkdir(parents=True, exist_ok=True)
        entry = {"version": version, "operation": operation, "time": datetime.now().astimezone().isoformat()}
        with open(history, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        return version

    def version(self, file_id: str) -> str:
        """The version id of the recorded state: md5 over the outputs' paths and DVC hashes."""
        data = yaml.safe_load(self.dvc_file(file_id).read_text())
        lines = sorted(f"{out['path']} {out['md5']}" for out in data["outs"])
        return hashlib.md5("\n".join(lines).encode()).hexdigest()

    def status(self, file_id: str) -> dict:
        """``dvc status`` of the dataset: empty when the work tree matches the recorded version."""
        repo = _open_repo(self.repo_root)
        try:
            return repo.status(targets=[str(self.dvc_file(file_id))])
        finally:
            repo.close()

    def push(self, file_id: str, remote: str | None = None) -> int:
        repo = _open_repo(self.repo_root)
        try:
            return repo.push(targets=[str(self.dvc_file(file_id))], remote=remote)
        finally:
            repo.close()

    def pull(self, file_id: str, remote: str | None = None) -> dict:
        repo = _open_repo(self.repo_root)
        try:
            return repo.pull(targets=[str(self.dvc_file(file_id))], remote=remote, force=True)
        finally:
            repo.close()
