"""SoVITS v2Pro / v2ProPlus equal the official networks: layouts, every ``s2v2pro*`` golden case, export round trip.

The generator is :class:`SynthesizerTrn` with ``version`` v2Pro/v2ProPlus (official sizes from ``OFFICIAL_SIZES``),
the discriminator the 8-period one; the v2 checks of ``test_sovits_v2`` run on them with the sv embedding added.
"""

from __future__ import annotations

import functools

import pytest
import torch

from mockvox import checkpoints as ck
from mockvox.models.discriminators import V2PRO_PERIODS, MultiPeriodDiscriminator
from mockvox.models.sovits_v2 import PRO_VERSIONS, SynthesizerTrn
from tests.conformance.fixtures import Case, case_names, fixtures_dir, key_shapes, load_case, run_checked
from tests.conformance.fixtures import scheme_state_dict as scheme
from tests.conformance.test_sovits_v2 import check_discriminator, check_train_forward

pytestmark = pytest.mark.skipif(not fixtures_dir().is_dir(), reason="no GPT-SoVITS fixture folder")

CASE_VERSIONS = {"s2v2pro": "v2Pro", "s2v2proplus": "v2ProPlus"}  # case-name prefix -> model version
HEADERS = {"v2Pro": b"05", "v2ProPlus": b"06"}


def _g_keys(version: str, enc_q: bool = True) -> str:
    return f"s2G_{version}_keys_{'incl' if enc_q else 'excl'}_enc_q"


def _version_of(case_name: str) -> str:
    return CASE_VERSIONS[case_name.split("_")[0]]


@pytest.mark.parametrize(
    ("keys_name", "build"),
    [(_g_keys(v, q), functools.partial(SynthesizerTrn.official, v, use_enc_q=q)) for v in PRO_VERSIONS for q in (1, 0)]
    + [("s2D_v2Pro_keys", functools.partial(MultiPeriodDiscriminator.for_version, v)) for v in PRO_VERSIONS],
)
def test_state_dict_equals_the_official_key_list(keys_name, build):
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    official = key_shapes(keys_name)
    assert list(ours) == list(official)  # same names in the same order (a saved checkpoint lists them so)
    assert {k: v for k, v in ours.items() if official[k] != v} == {}, "shape mismatches"


@functools.cache
def _generator(version: str, seed: int) -> SynthesizerTrn:
    model = SynthesizerTrn.official(version)
    model.load_state_dict(scheme(key_shapes(_g_keys(version)), seed), strict=True)
    return model.eval()


def _hooks(model: SynthesizerTrn, seen: dict) -> list:
    """Keep the first output of ``ref_enc``, ``sv_emb``, ``enc_p``, ``flow`` and the fused ``ge`` / ``ge512``."""

    def ge_to512(module, args, out):
        seen.setdefault("ge", args[0].transpose(1, 2))
        seen.setdefault("ge512", out.transpose(1, 2))

    return [
        model.ref_enc.register_forward_hook(lambda m, i, o: seen.setdefault("ge_ref", o)),
        model.sv_emb.register_forward_hook(lambda m, i, o: seen.setdefault("sv_proj", o)),
        model.ge_to512.register_forward_hook(ge_to512),
        model.enc_p.register_forward_hook(lambda m, i, o: seen.setdefault("enc_p", o)),
        model.flow.register_forward_hook(lambda m, i, o: seen.setdefault("z", o)),
    ]


def _run_decode(case: Case) -> None:
    model, p, seen = _generator(_version_of(case.name), case.seed), case.params, {}
    codes, text = case.input("codes"), case.input("text")
    refer, sv = [case.input("refer")], [case.input("sv_emb")]
    hooks = _hooks(model, seen)
    try:
        wav = model.decode(codes, text, refer, noise_scale=p["noise_scale"], speed=p["speed"], sv_emb=sv)
    finally:
        for hook in hooks:
            hook.remove()
    _, m_p, logs_p, _ = seen.pop("enc_p")
    for name, value in {**seen, "m_p": m_p, "logs_p": logs_p, "wav": wav}.items():
        case.check(name, value)
    case.check("wav_speed2", model.decode(codes, text, refer, p["noise_scale"], p["speed2"], sv_emb=sv))
    two = {}  # a hook's return value would replace the output: keep the tensor, return None
    hook = model.ge_to512.register_forward_hook(lambda m, i, o: two.update(ge=i[0].transpose(1, 2)))
    try:
        refer2, sv2 = refer + [case.input("refer2")], sv + [case.input("sv_emb2")]
        case.check("wav_two_refs", model.decode(codes, text, refer2, p["noise_scale"], p["speed"], sv_emb=sv2))
    finally:
        hook.remove()
    case.check("ge_two_refs", two["ge"])


def _run_train_forward(case: Case) -> None:
    model, seen = _generator(_version_of(case.name), case.seed), {}
    hooks = _hooks(model, seen)
    try:
        check_train_forward(case, model, case.input("sv_emb"))
    finally:
        for hook in hooks:
            hook.remove()
    case.check("ge", seen["ge"])
    case.check("ge512", seen["ge512"])


def _run_discriminator(case: Case) -> None:
    assert tuple(case.params["periods"]) == V2PRO_PERIODS
    check_discriminator(case, MultiPeriodDiscriminator.for_version("v2Pro"), "s2D_v2Pro_keys")


RUNNERS = {
    "s2v2pro_decode": _run_decode,
    "s2v2proplus_decode": _run_decode,
    "s2v2pro_train_forward": _run_train_forward,
    "s2v2proplus_train_forward": _run_train_forward,
    "s2v2pro_discriminator": _run_discriminator,
}


@pytest.mark.parametrize("name", case_names("s2v2pro"))
def test_golden_case(name):
    assert name in RUNNERS, f"no runner for fixture case {name!r}; known: {sorted(RUNNERS)}"
    run_checked(load_case(name), RUNNERS[name])


@pytest.mark.parametrize("version", PRO_VERSIONS)
def test_official_files_load_and_exports_round_trip(tmp_path, version):
    """A pretrained-shaped G (zip, fp32, enc_q) and a WebUI export (header 05/06, fp16, no enc_q) load as ``version``;
    our export of the loaded model carries the same header and the same weights."""
    full = scheme(key_shapes(_g_keys(version)), seed=1)
    config = {"data": {"filter_length": 2048, "hop_length": 640}, "train": {"segment_size": 20480}, "model": {}}
    ck.save_sovits_checkpoint(tmp_path / "s2G.pth", full, config, "pretrained", export=False)
    pretrained = SynthesizerTrn.from_checkpoint(tmp_path / "s2G.pth")  # version from the weights' shapes
    assert (pretrained.version, pretrained.segment_size, hasattr(pretrained, "enc_q")) == (version, 32, True)
    assert all(torch.equal(v, full[k]) for k, v in pretrained.state_dict().items())

    export = ck.save_sovits_checkpoint(tmp_path / "export.pth", full, config, "8epoch_80iteration", version=version)
    assert export.read_bytes()[:2] == HEADERS[version]
    loaded = ck.load_sovits_checkpoint(export)
    assert loaded.version == ck.SovitsVersion("v2", version, False) and loaded.info == "8epoch_80iteration"
    assert {k: tuple(v.shape) for k, v in loaded.weight.items()} == key_shapes(_g_keys(version, enc_q=False))
    assert all(v.dtype == torch.float16 for v in loaded.weight.values() if v.is_floating_point())
    model = SynthesizerTrn.from_checkpoint(export)
    assert model.version == version and not hasattr(model, "enc_q")

    again = ck.save_sovits_checkpoint(tmp_path / "again.pth", model.state_dict(), loaded.config, "x", version=version)
    assert again.read_bytes()[:2] == HEADERS[version]
    reloaded = ck.load_sovits_checkpoint(again).weight
    assert list(reloaded) == list(loaded.weight) and all(torch.equal(reloaded[k], v) for k, v in loaded.weight.items())
