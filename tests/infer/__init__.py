"""Tiny random voices for the synthesis tests: real model classes at CPU-friendly sizes, written as model folders."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from transformers import HubertConfig, HubertModel

from mockvox.models import sovits_v2, sovits_v4
from mockvox.models.eres2net import ERes2NetV2, SpeakerEncoder
from mockvox.models.hubert import HubertSSL
from mockvox.models.lora import add_lora, exported_keys
from mockvox.models.t2s import T2SConfig, Text2Semantic
from mockvox.models.vocoder_v4 import build_vocoder
from mockvox.voice import write_voice

# Hop 640 like the real 32 kHz spectrogram; the codebook has the GPT's 1024 codes.
V2_KWARGS = {
    **sovits_v2.TINY,
    "spec_channels": 1025,
    "ssl_dim": 32,
    "codebook_size": 1024,
    "upsample_rates": (10, 8, 8),
    "upsample_kernel_sizes": (20, 16, 16),
    "resblock_kernel_sizes": (3,),
    "resblock_dilation_sizes": ((1, 3, 5),),
}
SV_KWARGS = {"m_channels": 8, "num_blocks": (1, 1, 1, 1)}  # a CPU-sized ERes2NetV2: 2560-d SV embeddings
V2PRO_KWARGS = {  # v2Pro over the tiny v2; v2ProPlus also widens the decoder, as upstream
    "v2Pro": {**V2_KWARGS, **sovits_v2.TINY_PRO, "sv_dim": 2560},
    "v2ProPlus": {**V2_KWARGS, **sovits_v2.TINY_PRO, "sv_dim": 2560, "upsample_initial_channel": 48},
}
V4_KWARGS = {**sovits_v4.TINY, "spec_channels": 1025, "ssl_dim": 32, "codebook_size": 1024}
VOCODER_KWARGS = {"upsample_initial_channel": 32, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]]}


def tiny_gpt(seed: int = 0) -> Text2Semantic:
    """A tiny GPT whose EOS logit is always 0: EOS never reaches the top-k, so every fragment hits ``max_tokens``."""
    torch.manual_seed(seed)
    gpt = Text2Semantic(T2SConfig.tiny()).eval()
    with torch.no_grad():
        gpt.ar_predict_layer.weight[gpt.eos] = 0
    return gpt


def tiny_hubert(seed: int = 0) -> HubertSSL:
    torch.manual_seed(seed)
    cfg = HubertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    return HubertSSL(HubertModel(cfg).eval())


def tiny_v2(seed: int = 1) -> sovits_v2.SynthesizerTrn:
    torch.manual_seed(seed)
    return sovits_v2.SynthesizerTrn(**V2_KWARGS).eval()


def tiny_v2pro(version: str = "v2Pro", seed: int = 5) -> sovits_v2.SynthesizerTrn:
    torch.manual_seed(seed)
    return sovits_v2.SynthesizerTrn(**V2PRO_KWARGS[version], version=version).eval()


def tiny_sv(seed: int = 4) -> SpeakerEncoder:
    torch.manual_seed(seed)
    return SpeakerEncoder(ERes2NetV2(**SV_KWARGS))


def tiny_v4(seed: int = 2, rank: int = 4) -> tuple[sovits_v4.SynthesizerTrnV3, sovits_v4.SynthesizerTrnV3]:
    """(base, LoRA-trained copy): adapters and wns1 moved off their initial values, exported entries fp16-exact."""
    torch.manual_seed(seed)
    base = sovits_v4.SynthesizerTrnV3(**V4_KWARGS).eval()
    model = add_lora(copy.deepcopy(base), rank=rank)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or name.startswith("wns1."):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        state = model.state_dict()
        for key in exported_keys(model):  # the export is fp16: make the in-memory values representable
            if state[key].is_floating_point():
                state[key].copy_(state[key].half().float())
    return base, model


def tiny_vocoder(seed: int = 3):
    torch.manual_seed(seed)
    return build_vocoder(**VOCODER_KWARGS)


def write_v2(path: Path, **kw) -> Path:
    args = dict(version="v2", gpt=tiny_gpt(), sovits=tiny_v2(), sovits_kwargs=V2_KWARGS, hubert=tiny_hubert())
    return write_voice(path, **{**args, "bert": None, **kw})


def write_v2pro(path: Path, version: str = "v2Pro", **kw) -> Path:
    """A tiny v2Pro / v2ProPlus voice with its SV network bundled (``sv="pretrained"``: from the pretrained folder)."""
    args = dict(version=version, gpt=tiny_gpt(), sovits=tiny_v2pro(version), sovits_kwargs=V2PRO_KWARGS[version])
    extra = dict(hubert=tiny_hubert(), bert=None, sv=tiny_sv(), sv_kwargs=SV_KWARGS)
    return write_voice(path, **{**args, **extra, **kw})


def write_v4(path: Path, **kw) -> Path:
    base, model = tiny_v4()
    args = dict(version="v4", gpt=tiny_gpt(), sovits=model, sovits_kwargs=V4_KWARGS, hubert=tiny_hubert())
    extra = dict(sovits_base=base, vocoder=tiny_vocoder(), vocoder_kwargs=VOCODER_KWARGS, bert=None)
    return write_voice(path, **{**args, **extra, **kw})
