"""ERes2NetV2 speaker-verification (SV) network of GPT-SoVITS v2Pro/v2ProPlus (``eres2net/ERes2NetV2.py``, ``sv.py``).

Same parameter names, shapes and eval-mode numerics as the official ``ERes2NetV2(baseWidth=24, scale=4,
expansion=4)``, so ``sv/pretrained_eres2netv2w24s4ep4.ckpt`` (a bare state dict) loads strictly. GPT-SoVITS uses the
20480-d trunk embedding (official ``forward3``, here :meth:`ERes2NetV2.sv_embedding`), not the 192-d head.
Differences: only the TSTP pooling and the single embedding layer of the official defaults are built.

Design: a stem (3x3 conv, BN, ReLU) and four stages of Res2Net-style blocks on a [B, 1, 80, T] log-mel "image".
A block splits its 1x1-conv output into ``scale`` channel groups and runs a 3x3 conv per group, each group
receiving the previous group's output: added (stages 1-2) or merged by attentional feature fusion (AFF, stages
3-4). Activations are ``Hardtanh(0, 20)``: ReLU clamped at 20. Stage 3 is downsampled and fused into stage 4's
output by one more AFF; that map [B, 2048, 10, T/8], averaged over time, is the SV embedding.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from mockvox.audio.kaldi import fbank_batch, sinc_resample

ACT_MAX = 20.0  # the official block activation is nn.Hardtanh(0, 20), named ReLU
SV_SAMPLE_RATE = 16000  # the SV model's input rate
SV_NUM_MELS = 80
SV_DIM = 20480  # 2048 channels x 10 frequency rows


def _act(x: torch.Tensor) -> torch.Tensor:
    # in place: only ever applied to a tensor the block has just created
    return F.hardtanh(x, 0.0, ACT_MAX, inplace=True)


class AFF(nn.Module):
    """Attentional feature fusion of two maps ``[B, C, H, W]``: ``x * a + y * (2 - a)``, ``a = 1 + tanh(att)``."""

    def __init__(self, channels: int, r: int = 4):
        super().__init__()
        inter = channels // r
        self.local_att = nn.Sequential(
            nn.Conv2d(2 * channels, inter, kernel_size=1),
            nn.BatchNorm2d(inter),
            nn.SiLU(),
            nn.Conv2d(inter, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        att = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))
        return x * att + y * (2.0 - att)


class ERes2NetV2Block(nn.Module):
    """``BasicBlockERes2NetV2`` (``fuse=False``: groups added) or ``BasicBlockERes2NetV2AFF`` (``fuse=True``)."""

    def __init__(
        self, in_planes: int, planes: int, stride: int, base_width: int, scale: int, expansion: int, fuse: bool
    ):
        super().__init__()
        width = int(math.floor(planes * (base_width / 64.0)))
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * scale, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False) for _ in range(scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AFF(width, r=4) for _ in range(scale - 1))
        self.fuse = fuse
        self.conv3 = nn.Conv2d(width * scale, planes * expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(_act(self.bn1(self.conv1(x))), self.width, dim=1)
        outs: list[torch.Tensor] = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i == 0:
                sp = groups[0]
            elif self.fuse:
                sp = self.fuse_models[i - 1](sp, groups[i])
            else:
                sp = sp + groups[i]
            sp = _act(bn(conv(sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        out += self.shortcut(x)
        return _act(out)


class ERes2NetV2(nn.Module):
    """The official ``ERes2NetV2`` (TSTP pooling, one embedding layer); GPT-SoVITS builds it with (24, 4, 4)."""

    def __init__(
        self,
        base_width: int = 24,
        scale: int = 4,
        expansion: int = 4,
        num_blocks: tuple[int, ...] = (3, 4, 6, 3),
        m_channels: int = 64,
        feat_dim: int = SV_NUM_MELS,
        embedding_size: int = 192,
    ):
        super().__init__()
        self.in_planes = m_channels
        block = dict(base_width=base_width, scale=scale, expansion=expansion)
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self._make_layer(m_channels, num_blocks[0], 1, fuse=False, **block)
        self.layer2 = self._make_layer(m_channels * 2, num_blocks[1], 2, fuse=False, **block)
        self.layer3 = self._make_layer(m_channels * 4, num_blocks[2], 2, fuse=True, **block)
        self.layer4 = self._make_layer(m_channels * 8, num_blocks[3], 2, fuse=True, **block)
        top = m_channels * 8 * expansion
        self.layer3_ds = nn.Conv2d(m_channels * 4 * expansion, top, kernel_size=3, padding=1, stride=2, bias=False)
        self.fuse34 = AFF(top, r=4)
        stats_dim = int(feat_dim / 8) * m_channels * 8 * expansion  # channels x frequency rows after 3 strides
        self.seg_1 = nn.Linear(2 * stats_dim, embedding_size)  # on TSTP = [mean, std] over time

    def _make_layer(self, planes: int, n: int, stride: int, **block) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(ERes2NetV2Block(self.in_planes, planes, s, **block))
            self.in_planes = planes * block["expansion"]
        return nn.Sequential(*layers)

    def features(self, feats: torch.Tensor) -> torch.Tensor:
        """Trunk: fbank ``[B, T, F]`` -> fused stage-3/4 map ``[B, 2048, F/8, ceil(T/8)]``."""
        x = feats.transpose(1, 2).unsqueeze(1)  # [B, 1, F, T]: frequency is the height
        out = F.relu(self.bn1(self.conv1(x)))  # plain ReLU in the stem
        out3 = self.layer3(self.layer2(self.layer1(out)))
        return self.fuse34(self.layer4(out3), self.layer3_ds(out3))

    def sv_embedding(self, feats: torch.Tensor) -> torch.Tensor:
        """Official ``forward3``: the trunk map averaged over time, ``[B, C * H]`` flattened channel-major."""
        return self.features(feats).flatten(1, 2).mean(-1)

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        """Trunk map -> 192-d embedding: TSTP pooling (mean, sqrt(unbiased var + 1e-8) over time), ``seg_1``."""
        fmap = fmap.flatten(1, 2)  # [B, C * H, T']
        stats = torch.cat((fmap.mean(-1), torch.sqrt(torch.var(fmap, dim=-1) + 1e-8)), dim=1)
        return self.seg_1(stats)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """The 192-d speaker embedding of fbank ``[B, T, F]``; GPT-SoVITS does not use it."""
        return self.head(self.features(feats))


def load_eres2netv2(path: str | os.PathLike, map_location: str | torch.device = "cpu", **sizes) -> ERes2NetV2:
    """Load ``pretrained_eres2netv2w24s4ep4.ckpt`` (a bare ``torch.save`` state dict) strictly, in eval mode.

    ``sizes``: ``ERes2NetV2`` constructor overrides (tiny test networks); none for the official file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a bare ERes2NetV2 state dict (sv/pretrained_eres2netv2w24s4ep4.ckpt)")
    model = ERes2NetV2(**sizes)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def sv_fbank(wave: torch.Tensor, sample_rate: int = 32000) -> torch.Tensor:
    """SV input features: waveforms ``[B, N]`` in [-1, 1] -> 16 kHz Kaldi log-mel ``[B, frames, 80]``."""
    wave16k = sinc_resample(wave, sample_rate, SV_SAMPLE_RATE)
    return fbank_batch(wave16k, num_mel_bins=SV_NUM_MELS, sample_frequency=SV_SAMPLE_RATE)


class SpeakerEncoder(nn.Module):
    """v2Pro SV embedding of raw audio, as ``SV.compute_embedding3`` after the 32 -> 16 kHz resampling.

    ``forward(wave [B, N]) -> [B, 20480]``: waveforms at ``sample_rate`` in [-1, 1], equal length within a batch.
    """

    def __init__(self, net: ERes2NetV2 | None = None, sample_rate: int = 32000):
        super().__init__()
        self.net = (net if net is not None else ERes2NetV2()).eval()
        self.sample_rate = sample_rate

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, sample_rate: int = 32000, **sizes) -> SpeakerEncoder:
        return cls(load_eres2netv2(path, **sizes), sample_rate)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``sample_rate``: of ``wave`` when it is not the encoder's own rate."""
        if wave.dim() == 1:
            wave = wave[None]
        param = next(self.net.parameters())
        feats = sv_fbank(wave.to(param.device, torch.float32), sample_rate or self.sample_rate)
        return self.net.sv_embedding(feats.to(param.dtype))
