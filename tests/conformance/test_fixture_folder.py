"""The fixture folder itself is usable: scheme fingerprints and case discovery."""

import os
from pathlib import Path

import pytest

from tests.conformance.fixtures import case_names, fixtures_dir, load_case, scheme_state_dict

REQUIRED = os.environ.get("MOCKVOX_FIXTURES_OPTIONAL") != "1"


def test_fixture_folder_is_present():
    """Other conformance tests skip without the folder; this one fails, so a missing folder never passes silently."""
    if not REQUIRED and not fixtures_dir().is_dir():
        pytest.skip("MOCKVOX_FIXTURES_OPTIONAL=1 and no fixture folder")
    assert fixtures_dir().is_dir(), f"no GPT-SoVITS fixture folder at {fixtures_dir()} (set MOCKVOX_FIXTURES)"
    assert (fixtures_dir() / "deterministic_weights.py").is_file()
    assert (fixtures_dir() / "keys").is_dir()


needs_folder = pytest.mark.skipif(not fixtures_dir().is_dir(), reason="no GPT-SoVITS fixture folder")


def case_names_in(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if (p / "case.json").is_file()]


def test_default_folder_is_inside_the_repository():
    """A clone alone carries its golden data: the default needs nothing beside the repository."""
    default = Path(__file__).resolve().parents[1] / "fixtures" / "gpt-sovits"
    assert (default / "README.md").is_file() and (default / "deterministic_weights.py").is_file()
    assert len(case_names_in(default)) >= 10


@needs_folder
def test_cases_discovered():
    names = case_names("")
    assert any(n.startswith("t2s_") for n in names)
    assert any(n.startswith("s2v2_") for n in names)
    assert any(n.startswith("v4_") for n in names)


@needs_folder
def test_scheme_is_deterministic():
    shapes = {"model.bert_proj.weight": (512, 1024), "dec.ups.0.weight_g": (512, 1, 1)}
    a = scheme_state_dict(shapes, seed=1)
    b = scheme_state_dict(dict(reversed(list(shapes.items()))), seed=1)
    for key in shapes:
        assert a[key].equal(b[key])
    assert a["dec.ups.0.weight_g"].sub(1).abs().max() < 1  # R9: 1 + 0.1*x


@needs_folder
def test_case_check_rejects_wrong_values():
    case = load_case(case_names("t2s_logits")[0])
    good = case.expected("single_logits")
    case.check("single_logits", good)
    with pytest.raises(AssertionError):
        case.check("single_logits", good * 1.01)
    with pytest.raises(AssertionError):
        case.check("single_targets", case.expected("single_targets") + 1)
