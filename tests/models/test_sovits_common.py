"""The encoder set-up shared by SoVITS v2 and v4: official key order, constructor keys, codes, frozen parts."""

from __future__ import annotations

import pytest
import torch

from mockvox.models.sovits_common import SoVITSBase
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from tests.conformance.fixtures import key_shapes

SHARED = {"ssl_proj", "quantizer", "enc_p", "ref_enc"}


@pytest.mark.parametrize(
    ("keys_name", "build"),
    [
        ("s2G_v2_keys_incl_enc_q", lambda: SynthesizerTrn()),
        ("s2G_v2_keys_excl_enc_q", lambda: SynthesizerTrn(use_enc_q=False)),
        ("s2G_v4_keys", lambda: SynthesizerTrnV3()),
    ],
)
def test_state_dict_keys_come_in_the_official_order(keys_name, build):
    with torch.device("meta"):
        model = build()
    assert list(model.state_dict()) == list(key_shapes(keys_name))  # a saved checkpoint lists them the same way


def test_config_keys_join_own_and_shared_sizes():
    v2, v4 = SynthesizerTrn.config_keys(), SynthesizerTrnV3.config_keys()
    assert {"spec_channels", "gin_channels", "ssl_dim", "freeze_quantizer"} <= v2 & v4
    assert {"segment_size", "use_enc_q", "n_flows"} <= v2 - v4
    assert {"cond_channels", "wns_layers", "dit"} <= v4 - v2
    assert not {"self", "decoder", "encoder"} & (v2 | v4)


def test_v2_and_v4_share_the_semantic_side():
    v2, v4 = SynthesizerTrn.tiny().eval(), SynthesizerTrnV3.tiny().eval()
    assert isinstance(v2, SoVITSBase) and isinstance(v4, SoVITSBase)
    for name in SHARED:  # same parts, same shapes
        assert {k: p.shape for k, p in getattr(v2, name).state_dict().items()} == {
            k: p.shape for k, p in getattr(v4, name).state_dict().items()
        }
    v4.load_state_dict({k: v for k, v in v2.state_dict().items() if k.split(".")[0] in SHARED}, strict=False)
    ssl = torch.randn(2, 32, 21)
    with torch.no_grad():
        assert torch.equal(v4.extract_latent(ssl), v2.extract_latent(ssl))
        assert v4.extract_latent(ssl).shape == (2, 1, 10)


def test_frozen_parts_and_their_gradients():
    v2, v4 = SynthesizerTrn.tiny(), SynthesizerTrnV3.tiny()
    assert v2.frozen_parts == ("ssl_proj", "quantizer")
    assert v4.frozen_parts == ("ssl_proj", "quantizer", "enc_p")
    assert all(p.requires_grad for p in v2.parameters())  # v2 only skips them in the forward
    assert not any(p.requires_grad for name in v4.frozen_parts for p in getattr(v4, name).parameters())
    assert all(p.requires_grad for p in SynthesizerTrnV3.tiny(freeze_quantizer=False).parameters())
    v4.train()
    with v4.frozen():
        assert not torch.is_grad_enabled()
        assert not v4.enc_p.training and not v4.quantizer.training and v4.ref_enc.training
    assert torch.is_grad_enabled() and all(m.training for m in v4.modules())


def test_unfrozen_model_keeps_gradients_and_modes():
    net = SynthesizerTrn.tiny(freeze_quantizer=False).train()
    with net.frozen():
        assert torch.is_grad_enabled() and all(m.training for m in net.modules())


@pytest.mark.parametrize("cls", [SynthesizerTrn, SynthesizerTrnV3])
def test_shared_sizes_are_checked(cls):
    with pytest.raises(ValueError, match="ref_bins"):
        cls.tiny(ref_bins=100)
    with pytest.raises(ValueError, match="mrte_hidden"):
        cls.tiny(mrte_hidden=8)
