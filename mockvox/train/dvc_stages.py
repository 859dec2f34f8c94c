"""DVC stages after ``prepare``: ``features`` and ``train`` on the prepared sample folder, settings from params.yaml.

``params.yaml`` is the composed ``conf/params.yaml`` (DVC's Hydra composition rewrites it on ``dvc exp run``).
Usage: ``python -m mockvox.train.dvc_stages features|train --prepared data/prepared/sample``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from mockvox.config import load_params


class FolderStore:
    """A prepared folder (``sliced/``, ``denoised/``, ``output.json``) seen as a store holding one dataset."""

    def __init__(self, folder: str | Path, file_id: str):
        self.folder, self.file_id = Path(folder), file_id

    def read_output(self, file_id: str) -> dict:
        return json.loads((self.folder / "output.json").read_text(encoding="utf-8"))

    def sliced_dir(self, file_id: str) -> Path:
        return self.folder / "sliced"

    def denoised_dir(self, file_id: str) -> Path:
        return self.folder / "denoised"

    def audio_dir(self, file_id: str) -> Path:
        return self.denoised_dir(file_id) if self.read_output(file_id)["denoised"] else self.sliced_dir(file_id)

    def versions(self, file_id: str) -> list[dict]:
        digest = hashlib.md5((self.folder / "output.json").read_bytes())
        for path in sorted(self.folder.rglob("*.wav")):
            digest.update(f"{path.relative_to(self.folder)}:{path.stat().st_size}".encode())
        return [{"version": digest.hexdigest()}]

    def manifest(self, file_id: str) -> dict:
        return {"file_id": file_id, "version": self.versions(file_id)[-1]["version"], **self.read_output(file_id)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["features", "train"])
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--metrics", type=Path, default=None, help="write the stage's results as JSON")
    args = parser.parse_args(argv)
    cfg = load_params(args.params)
    store = FolderStore(args.prepared, cfg.data.file_id)
    if args.stage == "features":
        from mockvox.train.build import build_networks
        from mockvox.train.stages import check_speech, prepare_features

        check_speech(cfg, store)
        out = prepare_features(cfg, store, build_networks(cfg, with_bert=True))
        result = {"features": str(out), "items": len(json.loads((out / "meta.json").read_text())["keys"])}
    else:
        from mockvox.train.run import train

        res = train(cfg, store=store)
        result = {k: v for k, v in res.as_dict().items() if k != "voice_dir"}
    if args.metrics:
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    from mockvox.logs import setup_logging

    setup_logging()
    main()
