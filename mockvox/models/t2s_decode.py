"""Re-implements GPT-SoVITS T2S KV-cache decoding (``infer_panel_naive`` / ``infer_panel_batch_infer``, ``sample``).

One batched loop serves both official entry points: texts of different lengths are left-padded (each keeps its own
positions), finished rows leave the batch (and the cache) as upstream, so seeded sampling draws the same random
numbers. Sampling order: repetition penalty over all previous tokens incl. the prompt -> top-p -> temperature ->
top-k -> softmax -> argmax(p / Exp(1)). EOS is blocked for the first ``min_steps`` steps; a row stops when the sample
or the argmax of the penalised logits is EOS, after ``early_stop_num`` tokens, or at ``max_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from mockvox.models.t2s import Text2Semantic, blocked_positions


@dataclass(frozen=True)
class SamplingConfig:
    top_k: int | None = 15  # None or <= 0: no top-k
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    early_stop_num: int = -1  # -1: none
    max_steps: int = 1500
    min_steps: int = 11  # EOS column removed while step < min_steps


@dataclass
class Generated:
    """One decoded item: ``sampled`` holds every drawn token incl. the final one (EOS or not)."""

    sampled: torch.Tensor  # [n] int64
    stopped_by_eos: bool
    last_step: int
    logits: list[torch.Tensor] = field(default_factory=list)  # raw logits per step when requested

    @property
    def tokens(self) -> torch.Tensor:
        """Generated semantic tokens without the EOS step."""
        return self.sampled[:-1] if self.stopped_by_eos else self.sampled


def sample_next(
    logits: torch.Tensor, previous: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row. ``logits`` [B, V] float; ``previous`` [B, L]. Returns (samples [B, 1], penalised)."""
    logits = logits.clone()
    if previous.shape[1] and cfg.repetition_penalty != 1.0:
        prev = previous.long()
        score = logits.gather(1, prev)
        score = torch.where(score < 0, score * cfg.repetition_penalty, score / cfg.repetition_penalty)
        logits.scatter_(1, prev, score)
    penalised = logits
    if cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        remove = sorted_logits.softmax(-1).cumsum(-1) > cfg.top_p
        remove[:, 0] = False
        logits = logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    logits = logits / max(cfg.temperature, 1e-5)
    if cfg.top_k is not None and cfg.top_k > 0:
        pivot = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = torch.where(logits < pivot, float("-inf"), logits)
    probs = logits.softmax(-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / noise).argmax(-1, keepdim=True), penalised


def _embed_texts(model: Text2Semantic, phones: list[torch.Tensor], berts: list[torch.Tensor]):
    """Embed each text with its own positions, left-pad to the longest: ([B, N, C], valid [B, N])."""
    items = [model.embed_text(p.unsqueeze(0), b.unsqueeze(0))[0] for p, b in zip(phones, berts, strict=True)]
    n = max(t.shape[0] for t in items)
    x = items[0].new_zeros(len(items), n, items[0].shape[1])
    valid = torch.zeros(len(items), n, dtype=torch.bool, device=x.device)
    for i, t in enumerate(items):
        x[i, n - t.shape[0] :] = t
        valid[i, n - t.shape[0] :] = True
    return x, valid


def _prefill(model: Text2Semantic, phones, berts, prompts: torch.Tensor | None, cache=None):
    """Run ``[text ; prompt]`` through the model filling ``cache`` (a new KV cache when None).

    Returns (hidden [B, T, C], cache, prompt ids [B, P], key validity [B, T] or None when nothing is padded).
    """
    x, x_valid = _embed_texts(model, phones, berts)
    b, nx = x_valid.shape
    y = x_valid.new_zeros((b, 0), dtype=torch.long) if prompts is None else prompts.long()
    xy = torch.cat([x, model.embed_audio(y)], dim=1)
    key_valid = None if bool(x_valid.all()) else torch.cat([x_valid, x_valid.new_ones(y.shape)], dim=1)
    allowed = ~blocked_positions(nx, y.shape[1], x.device)[None, None]  # [1, 1, T, T]
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, None, :]
    cache = cache if cache is not None else model.h.new_cache(b, xy.shape[1] + 64, like=xy)
    bias = torch.zeros(allowed.shape, dtype=xy.dtype, device=xy.device).masked_fill_(~allowed, float("-inf"))
    return model.h(xy, bias, cache), cache, y, key_valid  # an additive mask runs ~2x faster in CPU SDPA


@dataclass
class Step:
    """One decoding step of :func:`decode_steps`: the token drawn for each live row, and the rows that ended."""

    index: int
    rows: list[int]  # original index of each row that took part in this step
    samples: torch.Tensor  # [len(rows)] drawn tokens (EOS included where a row stopped on it)
    finished: dict[int, Generated]  # original index -> result, for the rows that ended at this step


def decode_steps(
    model: Text2Semantic,
    phones: list[torch.Tensor],
    berts: list[torch.Tensor],
    prompts: torch.Tensor | None,
    cfg: SamplingConfig = SamplingConfig(),
    generator: torch.Generator | None = None,
    keep_logits: int = 0,
    timings: dict[str, float] | None = None,
    static: bool | None = None,
) -> Iterator[Step]:
    """The KV-cache decoding loop as a generator: one :class:`Step` per sampled position, as soon as it is drawn.

    Prefill happens on the first ``next()`` (its seconds go to ``timings["prefill"]`` when given); the caller may
    stop iterating at any step (the cache goes with the generator). :func:`generate` collects the whole run;
    streaming reads the tokens as they come. ``static``: the fixed-shape step of :mod:`mockvox.models.t2s_graph`
    (CUDA graphs on a GPU); None = on a CUDA device for one text when graphs are enabled.
    """
    runner = _static_runner(model, phones, prompts, cfg, static)
    try:
        yield from _decode(model, phones, berts, prompts, cfg, generator, keep_logits, timings, runner)
    finally:
        if runner is not None:
            runner.release()


def _static_runner(model: Text2Semantic, phones, prompts, cfg: SamplingConfig, static: bool | None):
    """A claimed static-step runner for this run, or None (the dynamic step)."""
    from mockvox.models.t2s_graph import graphs_enabled, static_runner

    device = model.ar_predict_layer.weight.device
    if static is None:
        static = device.type == "cuda" and graphs_enabled()
    if not static or len(phones) != 1:
        return None
    like = model.ar_predict_layer.weight[:1, :1]
    runner = static_runner(model.h, like.to(model.ar_audio_position.alpha.dtype))
    needed = len(phones[0]) + (0 if prompts is None else prompts.shape[1]) + cfg.max_steps + 1
    if needed > runner.capacity or runner.claim() is None:
        return None  # too long for the static cache, or another request decodes with it: the dynamic step
    return runner


def _decode(model, phones, berts, prompts, cfg, generator, keep_logits, timings, runner) -> Iterator[Step]:
    start = time.perf_counter()
    with torch.inference_mode():
        h, cache, y, key_valid = _prefill(model, phones, berts, prompts, None if runner is None else runner.cache)
    if timings is not None:
        timings["prefill"] = time.perf_counter() - start
    p, pe = y.shape[1], model.ar_audio_position
    rows = list(range(len(phones)))  # original index of each live row
    raw_logits: list[list[torch.Tensor]] = [[] for _ in rows]
    for step in range(cfg.max_steps):
        with torch.inference_mode():
            logits = model.ar_predict_layer(h[:, -1]).float()  # [b, V]
            for r, i in enumerate(rows if step < keep_logits else []):
                raw_logits[i].append(logits[r : r + 1].clone())
            samples, penalised = sample_next(logits[:, :-1] if step < cfg.min_steps else logits, y, cfg, generator)
            y = torch.cat([y, samples], dim=1)
            eos = (samples[:, 0] == model.eos) | (penalised.argmax(-1) == model.eos)
            cap = (cfg.early_stop_num != -1 and y.shape[1] - p > cfg.early_stop_num) or step == cfg.max_steps - 1
            done = torch.ones_like(eos) if cap else eos
            finished: dict[int, Generated] = {}
            live = rows
            if (cap or step >= cfg.min_steps) and bool(done.any()):  # no EOS possible yet: no host read
                for r in done.nonzero()[:, 0].tolist():
                    finished[rows[r]] = Generated(y[r, p:].clone(), bool(eos[r]), step, raw_logits[rows[r]])
                keep = (~done).nonzero()[:, 0]
                if keep.numel():
                    rows, y = [rows[r] for r in keep.tolist()], y.index_select(0, keep)
                    cache.select(keep)
                    key_valid = None if key_valid is None else key_valid.index_select(0, keep)
                else:
                    rows = []
        yield Step(step, live, samples[:, 0], finished)
        if not rows:
            return
        with torch.inference_mode():
            xin = model.ar_audio_embedding(y[:, -1:]) + pe.alpha * pe.table(p + step + 1)[p + step]
            if key_valid is not None:  # padded texts: keep their left padding out of reach
                key_valid = torch.cat([key_valid, key_valid.new_ones(key_valid.shape[0], 1)], dim=1)
            if runner is not None:
                h = runner(xin)
            else:
                h = model.h.step(xin, None if key_valid is None else key_valid[:, None, None, :], cache)


def generate(
    model: Text2Semantic,
    phones: list[torch.Tensor],
    berts: list[torch.Tensor],
    prompts: torch.Tensor | None,
    cfg: SamplingConfig = SamplingConfig(),
    generator: torch.Generator | None = None,
    keep_logits: int = 0,
    static: bool | None = None,
) -> list[Generated]:
    """Decode semantic tokens for B texts sharing one prompt length (the whole run of :func:`decode_steps`).

    Args:
        phones: B phone-id tensors [N_i] (prompt phones ++ target phones).
        berts: B BERT feature tensors [1024, N_i].
        prompts: [B, P] prompt semantic tokens, or None (reference-free).
        keep_logits: store the raw logits of the first ``keep_logits`` steps in each result.
    """
    results: list[Generated | None] = [None] * len(phones)
    for step in decode_steps(model, phones, berts, prompts, cfg, generator, keep_logits, static=static):
        for i, res in step.finished.items():
            results[i] = res
    return results


def infer_panel(
    model: Text2Semantic,
    x: torch.Tensor,
    x_lens: torch.Tensor,
    prompts: torch.Tensor | None,
    bert: torch.Tensor,
    cfg: SamplingConfig = SamplingConfig(),
    generator: torch.Generator | None = None,
    return_logits: bool = False,
):
    """Official ``infer_panel`` contract for one item: (prompt ++ generated [1, P+n], last step index).

    After an EOS stop the EOS is removed; after an ``early_stop_num`` stop the last token is kept. With
    ``return_logits`` a third value lists the raw logits [1, V] of every step.
    """
    keep = 1 << 30 if return_logits else 0
    res = generate(model, [x[0, : int(x_lens.reshape(-1)[0])]], [bert[0]], prompts, cfg, generator, keep)[0]
    tokens = res.tokens.unsqueeze(0)
    y = tokens if prompts is None else torch.cat([prompts.long(), tokens], dim=1)
    return (y, res.last_step, res.logits) if return_logits else (y, res.last_step)


def infer_panel_batch(
    model: Text2Semantic,
    x: list[torch.Tensor],
    x_lens: torch.Tensor,
    prompts: torch.Tensor,
    bert: list[torch.Tensor],
    cfg: SamplingConfig = SamplingConfig(),
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[int]]:
    """Official ``infer_panel_batch_infer`` contract: per item prompt ++ all sampled tokens but the last, step index."""
    del x_lens  # lengths are those of the given tensors
    if prompts.shape[0] == 1 and len(x) > 1:
        prompts = prompts.expand(len(x), -1)
    results = generate(model, list(x), list(bert), prompts, cfg, generator)
    ys = [torch.cat([prompts[i].long(), r.sampled[:-1]]) for i, r in enumerate(results)]
    return ys, [r.last_step for r in results]
