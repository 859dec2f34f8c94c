"""Access to a GPT-SoVITS golden-fixture folder (format: ``tests/fixtures/gpt-sovits/README.md``).

The folder comes from ``MOCKVOX_FIXTURES`` (default ``tests/fixtures/gpt-sovits`` inside the repository). Cases are
discovered from the folder, and the weight scheme module is imported from the folder under test, never copied.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
STRICT = os.environ.get("MOCKVOX_CONFORMANCE_STRICT") == "1"  # the fixtures' optional CPU-fp32 tolerance tier


def fixtures_dir() -> Path:
    return Path(os.environ.get("MOCKVOX_FIXTURES", REPO_ROOT / "tests" / "fixtures" / "gpt-sovits")).resolve()


def case_names(prefix: str) -> list[str]:
    """Names of the case folders whose name starts with ``prefix`` (empty when the folder is absent)."""
    root = fixtures_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name.startswith(prefix) and (p / "case.json").is_file())


@cache
def _scheme_module():
    path = fixtures_dir() / "deterministic_weights.py"
    spec = importlib.util.spec_from_file_location("_mockvox_fixture_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def key_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """``keys/<name>.json`` as {key: shape}."""
    data = json.loads((fixtures_dir() / "keys" / f"{name}.json").read_text())
    return {row[0]: tuple(row[1]) for row in data["keys"]}


def scheme_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """The deterministic weights of the fixture folder for official key names and shapes."""
    return _scheme_module().deterministic_state_dict(shapes, seed)


@dataclass
class Case:
    name: str
    meta: dict
    tensors: dict[str, torch.Tensor]

    @property
    def seed(self) -> int:
        return int(self.meta["weights"]["seed"])

    @property
    def params(self) -> dict:
        return self.meta.get("params") or {}

    def input(self, name: str) -> torch.Tensor:
        return self.tensors[f"in.{name}"]

    def expected(self, name: str) -> torch.Tensor:
        return self.tensors[f"out.{name}"]

    def output_names(self) -> list[str]:
        return list(self.meta["outputs"])

    def check(self, name: str, actual: torch.Tensor, strict: bool = False) -> None:
        """Assert ``actual`` matches output ``name`` under the case's own comparison rule."""
        spec = self.meta["outputs"][name]
        expected = self.expected(name)
        actual = actual.detach().cpu()
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{self.name}.{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        )
        if spec["compare"] == "exact":
            mismatch = (actual.to(expected.dtype) != expected).sum().item()
            assert mismatch == 0, f"{self.name}.{name}: {mismatch} of {expected.numel()} values differ"
            return
        tol = spec["tolerance_strict" if strict else "tolerance"]
        exp = expected.double()
        err = (actual.double() - exp).abs().max().item()
        limit = tol["atol"] + tol["rtol"] * exp.abs().max().item()
        assert err <= limit, (
            f"{self.name}.{name}: max|diff| {err:.3e} > {limit:.3e} (atol {tol['atol']}, rtol {tol['rtol']})"
        )


def load_case(name: str) -> Case:
    folder = fixtures_dir() / name
    return Case(name, json.loads((folder / "case.json").read_text()), load_file(folder / "tensors.safetensors"))


def run_checked(case: Case, runner: Callable[[Case], None]) -> None:
    """Run ``runner(case)`` (its checks in the strict tier under ``STRICT``); assert it checked every stored output."""
    checked: set[str] = set()
    check = case.check

    def recording_check(out_name: str, actual: torch.Tensor, strict: bool = False) -> None:
        check(out_name, actual, strict or STRICT)
        checked.add(out_name)

    case.check = recording_check
    runner(case)
    assert checked == set(case.output_names()), f"outputs not checked: {set(case.output_names()) - checked}"
