"""HuBERT SSL features with a tiny random HubertModel saved and reloaded like chinese-hubert-base."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from mockvox.models.hubert import HubertSSL, pad_prompt, scale_for_hubert, scale_for_wav32k


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = HubertConfig(  # the chinese-hubert-base conv stack (hop 320) with tiny widths
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    path = tmp_path_factory.mktemp("hubert")
    HubertModel(cfg).eval().save_pretrained(path)
    return path


def test_features_are_50hz_last_hidden_state_without_normalisation(tiny_dir):
    ssl = HubertSSL.from_pretrained(tiny_dir)
    wav = 0.3 * torch.randn(2, 16000)
    feats = ssl(wav)
    assert feats.shape == (2, ssl.hidden_size, HubertSSL.num_frames(16000)) == (2, 16, 49)
    direct = HubertModel.from_pretrained(tiny_dir).eval()(wav).last_hidden_state.transpose(1, 2)
    torch.testing.assert_close(feats, direct)
    assert ssl(wav[0]).shape == (1, 16, 49)


def test_missing_model_gives_a_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained download"):
        HubertSSL.from_pretrained(tmp_path)


def test_official_input_scaling():
    wav = np.array([0.5, -0.25, 0.1], dtype=np.float32)
    np.testing.assert_allclose(scale_for_hubert(wav), wav / 0.5 * (0.95 * 0.5 * 1145.14) + 0.5 * 1145.14 * wav)
    assert scale_for_wav32k(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([0.975 * 32768, -0.975 * 32768])
    assert pad_prompt(torch.ones(1, 48000)).shape == (1, 48000 + 9600)
