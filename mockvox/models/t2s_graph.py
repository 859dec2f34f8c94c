"""The GPT decoding step with static shapes, captured as CUDA graphs on a GPU (batch 1).

Per token the GPU work is a few hundred tiny kernels; launched one by one from Python they cost more than they compute.
Here the key/value cache has a fixed capacity and stays allocated with its model, the position to write is a device
tensor, and attention covers the first ``k * BUCKET`` positions with the ones not yet written masked: every step inside
one bucket has the same shapes and addresses, so each bucket is captured once as a CUDA graph and then replayed with
one launch per token (the technique of upstream's CUDA-graph decoder and aqua-tts). Logits and sampling stay eager.

The same code runs eagerly on any device (the CPU tests check it draws the tokens of the dynamic path);
``MOCKVOX_CUDA_GRAPHS=off`` keeps GPUs on the dynamic path, and a failed capture falls back to it with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import threading

import torch

from mockvox.modules.ar_transformer import ARTransformer, KVCache, layer_step

log = logging.getLogger(__name__)

BUCKET = 128  # attention lengths captured: 128, 256, ... (more graphs, less masked work)
CAPACITY = 2560  # positions per model: text + prompt tokens + up to 1500 generated (126 MB bf16)


def graphs_enabled() -> bool:
    return os.environ.get("MOCKVOX_CUDA_GRAPHS", "auto").strip().lower() not in ("off", "0", "false", "no")


class StaticStep:
    """A fixed-capacity cache for one row and the step over it, eager or replayed from CUDA graphs.

    Use: ``with runner.claimed() as cache:`` (None when another request holds it), prefill into ``cache``, then call
    the runner once per token with the new position's input [1, 1, C]; the hidden state it returns is overwritten by
    the next call.
    """

    def __init__(self, transformer: ARTransformer, like: torch.Tensor, capacity: int = CAPACITY, graphs: bool = True):
        self.h = transformer
        self.cache = transformer.new_cache(1, capacity, like)
        self.cache.chunk = 0
        for buffer in self.cache.k + self.cache.v:  # masked positions are still read: 0 x garbage could be NaN
            buffer.zero_()
        attn = transformer.layers[0].self_attn
        self.x = like.new_zeros(1, 1, attn.heads * attn.head_dim)
        self.at = torch.zeros(1, dtype=torch.long, device=like.device)
        self.positions = torch.arange(capacity, device=like.device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.use_graphs = graphs and like.device.type == "cuda"
        self._pool = None
        self._busy = threading.Lock()

    @property
    def capacity(self) -> int:
        return self.cache.capacity

    def claim(self) -> KVCache | None:
        """The cache, emptied, for one request; None while another request decodes with it."""
        if not self._busy.acquire(blocking=False):
            return None
        self.cache.length = 0
        return self.cache

    def release(self) -> None:
        self._busy.release()

    def _run(self, length: int) -> torch.Tensor:
        bias = torch.zeros(length, dtype=self.x.dtype, device=self.x.device)
        bias = bias.masked_fill(self.positions[:length] > self.at, float("-inf"))[None, None, None]
        x = self.x
        for i, layer in enumerate(self.h.layers):
            x = layer_step(layer, x, bias, self.cache.k[i], self.cache.v[i], self.at, length)
        return x

    def _capture(self, length: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._run(length)  # warm-up (writes this position's key/value, as the replay will again)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self._pool = self._pool or torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self._pool):
            out = self._run(length)
        return graph, out

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = self.cache.length
        if n >= self.capacity:
            raise RuntimeError(f"static cache full ({self.capacity} positions)")
        length = min(math.ceil((n + 1) / BUCKET) * BUCKET, self.capacity)
        self.x.copy_(x)
        self.at.fill_(n)
        out = None
        if self.use_graphs:
            try:
                if length not in self.graphs:
                    self.graphs[length] = self._capture(length)
                graph, out = self.graphs[length]
                graph.replay()
            except (RuntimeError, AssertionError) as err:  # capture refused (no CUDA, driver, allocator): eager
                log.warning("CUDA graph capture failed (%s): the GPT step runs eagerly", err)
                self.use_graphs, self.graphs, out = False, {}, None
        if out is None:
            out = self._run(length)
        self.cache.length += 1
        return out


def static_runner(transformer: ARTransformer, like: torch.Tensor, graphs: bool = True) -> StaticStep:
    """The model's static-step runner on ``like``'s device and dtype: built once and kept on the model (its cache and
    graphs hold the weights' addresses; ``ARTransformer.release_inference`` drops them)."""
    runners = transformer.__dict__.setdefault("_static_runners", {})
    key = (str(like.device), like.dtype)
    with _RUNNERS_LOCK:
        if key not in runners:
            runners[key] = StaticStep(transformer, like, graphs=graphs)
        return runners[key]


_RUNNERS_LOCK = threading.Lock()
