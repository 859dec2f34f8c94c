"""Official pretrained weights: which files each version needs, download (resumable), verification, status.

Files come from the Hugging Face repo ``lj1995/GPT-SoVITS`` and keep its relative paths, which are also GPT-SoVITS's
``GPT_SoVITS/pretrained_models/`` layout (so an existing GPT-SoVITS folder can simply be copied). A file counts as
verified when its size equals the size reported by the source and it loads (torch checkpoint / JSON); verified sizes
are remembered in ``.mockvox-pretrained.json`` so ``check`` works offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mockvox import atomic, paths
from mockvox.config import read_option

REPO_ID = "lj1995/GPT-SoVITS"
MANIFEST = ".mockvox-pretrained.json"


def _official_files() -> dict:
    """The official names, from ``conf/pretrained/official.yaml`` (the one table; training composes it too)."""
    option = read_option("pretrained", "official")
    return {"hubert": option["hubert"], "bert": option["bert"], **option["files"]}


# {"hubert": folder, "bert": folder, "v2": {role: file}, "v2Pro": ..., "v4": ...}, relative to the pretrained folder
OFFICIAL_FILES: dict = _official_files()
FOLDER_FILES = {  # what the HuBERT and BERT folders hold
    "hubert": ("config.json", "preprocessor_config.json", "pytorch_model.bin"),
    "bert": ("config.json", "pytorch_model.bin", "tokenizer.json"),
}
COMMON = tuple(f"{OFFICIAL_FILES[part]}/{name}" for part, names in FOLDER_FILES.items() for name in names)
VERSION_FILES = {v: tuple(roles.values()) for v, roles in OFFICIAL_FILES.items() if isinstance(roles, dict)}


class PretrainedMissing(FileNotFoundError):
    """Some required pretrained files are absent or invalid; the message says which and where they go."""


def default_dir() -> Path:
    """The default ``paths.pretrained_dir``: $MOCKVOX_PRETRAINED, else $MOCKVOX_HOME/pretrained (absolute)."""
    return paths.pretrained_dir()


def required_files(version: str = "all") -> list[str]:
    if version == "all":
        versions = list(VERSION_FILES)
    elif version in VERSION_FILES:
        versions = [version]
    else:
        raise ValueError(f"unknown version {version!r}; accepted: {', '.join([*VERSION_FILES, 'all'])}")
    return list(dict.fromkeys([*COMMON, *(f for v in versions for f in VERSION_FILES[v])]))  # shared files once


# --- sources ----------------------------------------------------------------------------------------------------------
class HubSource:
    """The Hugging Face Hub via ``huggingface_hub`` (honours HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE)."""

    def __init__(self, repo_id: str = REPO_ID, revision: str | None = None):
        self.repo_id, self.revision = repo_id, revision

    def sizes(self, files: list[str]) -> dict[str, int]:
        from huggingface_hub import HfApi

        infos = HfApi().get_paths_info(self.repo_id, files, revision=self.revision)
        return {i.path: i.size for i in infos if getattr(i, "size", None) is not None}

    def fetch(self, file: str, root: Path) -> Path:
        from huggingface_hub import hf_hub_download  # resumes partial downloads kept under root/.cache

        return Path(hf_hub_download(self.repo_id, file, revision=self.revision, local_dir=root))


class FolderSource:
    """A local copy of the repo (a mirror, a GPT-SoVITS ``pretrained_models`` folder, or a test fake hub)."""

    def __init__(self, folder: str | os.PathLike, chunk: int = 1 << 20):
        self.folder, self.chunk = Path(folder), chunk

    def sizes(self, files: list[str]) -> dict[str, int]:
        return {f: (self.folder / f).stat().st_size for f in files if (self.folder / f).is_file()}

    def fetch(self, file: str, root: Path) -> Path:
        src, dest = self.folder / file, root / file
        if not src.is_file():
            raise FileNotFoundError(f"{file} is not in {self.folder}")
        part = dest.with_name(dest.name + ".incomplete")
        part.parent.mkdir(parents=True, exist_ok=True)
        done = part.stat().st_size if part.exists() else 0  # resume where an interrupted copy stopped
        with open(src, "rb") as fin, open(part, "ab") as fout:
            fin.seek(done)
            shutil.copyfileobj(fin, fout, self.chunk)
        os.replace(part, dest)
        return dest


# --- verification -----------------------------------------------------------------------------------------------------
def load_check(path: Path) -> None:
    """Raise if ``path`` does not load: JSON parses; torch files unpickle (memory-mapped when possible)."""
    if path.suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
        return
    from mockvox.checkpoints import read_checkpoint

    obj = read_checkpoint(path, mmap=True)
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: expected a non-empty dict of weights")


@dataclass
class FileStatus:
    file: str
    present: bool
    size: int | None = None
    verified: bool = False
    problem: str | None = None


class Store:
    """The local pretrained folder and its manifest of verified files."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = paths.absolute(root) if root is not None else default_dir()

    def _manifest(self) -> dict[str, int]:
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.is_file() else {}

    def _remember(self, file: str, size: int) -> None:
        data = self._manifest() | {file: size}
        atomic.write_text(self.root / MANIFEST, json.dumps(data, indent=1, sort_keys=True))

    def status(self, file: str) -> FileStatus:
        path = self.root / file
        if not path.is_file():
            return FileStatus(file, False)
        size, known = path.stat().st_size, self._manifest().get(file)
        if known is not None and known != size:
            return FileStatus(file, True, size, False, f"size {size} != verified size {known}")
        return FileStatus(file, True, size, known == size)

    def verify(self, file: str, expected_size: int | None) -> FileStatus:
        """Check size (when known) and loadability; remember the file as verified."""
        path = self.root / file
        size = path.stat().st_size
        if expected_size is not None and size != expected_size:
            return FileStatus(file, True, size, False, f"size {size} != {expected_size} on the source")
        try:
            load_check(path)
        except Exception as exc:  # noqa: BLE001 - any load failure means a broken file
            return FileStatus(file, True, size, False, f"does not load: {exc}")
        self._remember(file, size)
        return FileStatus(file, True, size, True)

    def missing_message(self, problems: list[FileStatus], source: str) -> str:
        lines = [f"{len(problems)} pretrained file(s) missing or invalid in {self.root.resolve()}:"]
        for st in problems:
            url = f"https://huggingface.co/{REPO_ID}/blob/main/{st.file}"
            lines.append(f"  {st.file}  ({st.problem or 'missing'}; {url})")
        lines += [
            f"Source tried: {source}.",
            f"Put them under {self.root.resolve()} with these relative paths (a GPT-SoVITS "
            "GPT_SoVITS/pretrained_models/ folder has the same layout), or download from a mirror with "
            "HF_ENDPOINT=https://hf-mirror.com, or pass --from DIR; then run `mockvox pretrained check`.",
        ]
        return "\n".join(lines)


def download(
    version: str = "all",
    root: str | os.PathLike | None = None,
    source: HubSource | FolderSource | None = None,
    log: Callable[[str], None] = print,
) -> list[FileStatus]:
    """Fetch and verify every file ``version`` needs; already verified files are skipped.

    Raises ``PretrainedMissing`` listing what could not be obtained (offline, missing upstream, broken file).
    """
    store, source = Store(root), source or HubSource()
    files = required_files(version)
    todo = [f for f in files if not store.status(f).verified]
    try:
        sizes = source.sizes(todo) if todo else {}
    except Exception as exc:  # noqa: BLE001 - offline or hub errors: keep going with what is local
        log(f"could not query sizes from the source ({type(exc).__name__}: {exc}); checking loadability only")
        sizes = {}
    results, problems = [], []
    for f in files:
        st = store.status(f)
        if f in todo and st.present:
            st = store.verify(f, sizes.get(f))
            if not st.verified:
                log(f"{f}: {st.problem}; fetching it again")
                (store.root / f).unlink()
        if f in todo and not st.verified:
            try:
                log(f"fetching {f}")
                source.fetch(f, store.root)
            except Exception as exc:  # noqa: BLE001 - offline, missing upstream, permissions...
                problems.append(FileStatus(f, False, problem=f"fetch failed: {type(exc).__name__}: {exc}"))
                continue
            st = store.verify(f, sizes.get(f))
        (results if st.verified else problems).append(st)
    if problems:
        raise PretrainedMissing(store.missing_message(problems, _describe(source)))
    return results


def check(version: str = "all", root: str | os.PathLike | None = None) -> tuple[list[FileStatus], list[FileStatus]]:
    """(present, missing-or-invalid) files for ``version``; presence alone is cheap, nothing is downloaded."""
    store = Store(root)
    statuses = [store.status(f) for f in required_files(version)]
    return [s for s in statuses if s.present and not s.problem], [s for s in statuses if not s.present or s.problem]


def _describe(source) -> str:
    return f"folder {source.folder}" if isinstance(source, FolderSource) else f"huggingface.co/{source.repo_id}"


# --- CLI --------------------------------------------------------------------------------------------------------------
def _print_table(rows: Iterable[FileStatus]) -> None:
    for s in rows:
        mark = "ok " if s.verified else ("?  " if s.present and not s.problem else "-- ")
        size = f"{s.size / 1e6:9.1f} MB" if s.size is not None else " " * 12
        print(f"{mark} {size}  {s.file}" + (f"  ({s.problem})" if s.problem else ""))


def cmd_download(args: argparse.Namespace) -> None:
    source = FolderSource(args.source_dir) if args.source_dir else HubSource(revision=args.revision)
    rows = download(args.version, args.dir, source)
    _print_table(rows)
    print(f"all {len(rows)} files for {args.version} verified in {Store(args.dir).root.resolve()}")


def cmd_check(args: argparse.Namespace) -> None:
    present, missing = check(args.version, args.dir)
    _print_table(present + missing)
    if missing:
        raise PretrainedMissing(Store(args.dir).missing_message(missing, "local folder only (check downloads nothing)"))
    print(f"all {len(present)} files for {args.version} present ('ok' = verified by download, '?' = not verified)")


def register_cli(subparsers) -> None:
    """Add ``mockvox pretrained download|check`` to the main CLI's subparsers."""
    top = subparsers.add_parser("pretrained", help="official GPT-SoVITS pretrained weights")
    sub = top.add_subparsers(dest="pretrained_command", required=True)
    for name, func, help_ in (
        ("download", cmd_download, "download and verify the files a version needs (resumable)"),
        ("check", cmd_check, "report which pretrained files are present"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--version", default="all", choices=[*VERSION_FILES, "all"])
        p.add_argument("--dir", default=None, help="folder (default: $MOCKVOX_PRETRAINED or $MOCKVOX_HOME/pretrained)")
        if name == "download":
            p.add_argument("--from", dest="source_dir", default=None, help="copy from a local folder, not the Hub")
            p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
