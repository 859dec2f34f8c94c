"""SoVITS v4 vocoder: GPT-SoVITS ``TTS.init_vocoder("v4")`` (``module/models.py::Generator``, 48 kHz, x480).

The official file ``gsv-v4-pretrained/vocoder.pth`` is a bare state dict saved after ``remove_weight_norm()``
(plain ``weight`` keys); the network is the shared HiFi-GAN :class:`~mockvox.modules.hifigan.Generator` built
without weight norm, so that file loads strictly. Input: de-normalised log-mel ``[B, 100, T]`` at 100 frames/s.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mockvox.checkpoints import read_checkpoint
from mockvox.modules.hifigan import Generator

V4_VOCODER: dict = dict(
    initial_channel=100,
    resblock="1",
    resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    upsample_rates=[10, 6, 2, 2, 2],
    upsample_initial_channel=512,
    upsample_kernel_sizes=[20, 12, 4, 4, 4],
    gin_channels=0,
    is_bias=True,
)
# Every block, x480 like the official, about 40 k parameters.
TINY_VOCODER: dict = {
    **V4_VOCODER,
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
}
SAMPLING_RATE = 48000
UPSAMPLE = 480  # output samples per mel frame


def build_vocoder(**overrides) -> Generator:
    """The v4 vocoder without weight norm (the layout of ``vocoder.pth``), in eval mode."""
    return Generator(**{**V4_VOCODER, **overrides}, weight_norm=False).eval()


def load_vocoder(path: str | Path, map_location: str | torch.device = "cpu", **overrides) -> Generator:
    """Build the vocoder and load the official bare state dict (``{"weight": ...}`` wrappers accepted too)."""
    state = read_checkpoint(path)
    if "weight" in state and isinstance(state["weight"], dict):
        state = state["weight"]
    vocoder = build_vocoder(**overrides)
    vocoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return vocoder.to(map_location)
