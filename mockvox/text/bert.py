"""Chinese BERT features for synthesis: chinese-roberta-wwm-ext-large `hidden_states[-3]`, one vector per phone.

Corresponds to GPT-SoVITS v2 `TextPreprocessor.get_bert_feature` / `get_bert_inf`: the per-character vectors
(without [CLS]/[SEP]) are repeated `word2ph[i]` times -> `[hidden, n_phones]`; non-zh segments get zeros.
torch and transformers are imported lazily (only this module needs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockvox.text.modes import TextSegment, segments_for_mode
from mockvox.text.symbols import cleaned_text_to_sequence

DEFAULT_BERT = "hfl/chinese-roberta-wwm-ext-large"


@dataclass
class Bert:
    """A tokenizer + masked-LM pair (hidden size 1024 for the official model)."""

    tokenizer: Any
    model: Any
    device: str = "cpu"

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def load_bert(name_or_path: str | Path = DEFAULT_BERT, device: str = "cpu", local_files_only: bool = False) -> Bert:
    """Load the BERT from a local folder or a Hugging Face hub name.

    Raises:
        FileNotFoundError: the folder or hub model is not available (e.g. offline and not cached).
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    local = Path(name_or_path).expanduser()
    source = str(local) if local.is_dir() else str(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        model = AutoModelForMaskedLM.from_pretrained(source, local_files_only=local_files_only)
    except OSError as err:
        raise FileNotFoundError(
            f"BERT model {name_or_path!r} is not available: pass a local folder holding chinese-roberta-wwm-ext-large "
            f"(config.json, tokenizer files, weights) or a hub name reachable from this machine ({err})"
        ) from err
    return Bert(tokenizer, model.eval().to(device), device)


def bert_feature(bert: Bert, norm_text: str, word2ph: list[int]):
    """`[hidden, sum(word2ph)]` features of normalised Mandarin text."""
    import torch

    if len(word2ph) != len(norm_text):
        raise ValueError(f"word2ph has {len(word2ph)} entries for {len(norm_text)} characters")
    with torch.no_grad():
        inputs = bert.tokenizer(norm_text, return_tensors="pt").to(bert.device)
        hidden = bert.model(**inputs, output_hidden_states=True).hidden_states[-3][0][1:-1].cpu()  # [chars, H]
    if hidden.shape[0] != len(norm_text):
        raise ValueError(f"tokenizer gave {hidden.shape[0]} tokens for {len(norm_text)} characters of {norm_text!r}")
    counts = torch.tensor(word2ph, dtype=torch.long)
    return torch.repeat_interleave(hidden, counts, dim=0).T  # [H, n_phones]


def bert_features(bert: Bert, items: list[tuple[str, list[int]]]) -> list:
    """:func:`bert_feature` for many texts in one padded forward (the model runs once for a whole request).

    Right padding with an attention mask leaves every real token's hidden state as in its own run (float error only);
    on a CPU one batch of n fragments costs far less than n calls.
    """
    import torch

    for norm_text, word2ph in items:
        if len(word2ph) != len(norm_text):
            raise ValueError(f"word2ph has {len(word2ph)} entries for {len(norm_text)} characters")
    if not items:
        return []
    with torch.no_grad():
        inputs = bert.tokenizer([t for t, _ in items], return_tensors="pt", padding=True).to(bert.device)
        hidden = bert.model(**inputs, output_hidden_states=True).hidden_states[-3].cpu()  # [n, tokens, H]
    lengths = inputs["attention_mask"].sum(1).tolist()
    out = []
    for (norm_text, word2ph), row, n in zip(items, hidden, lengths, strict=True):
        if n - 2 != len(norm_text):
            raise ValueError(f"tokenizer gave {n - 2} tokens for {len(norm_text)} characters of {norm_text!r}")
        out.append(torch.repeat_interleave(row[1 : n - 1], torch.tensor(word2ph, dtype=torch.long), dim=0).T)
    return out


def segment_features(bert: Bert, segment: TextSegment):
    """BERT features for a zh segment, zeros `[hidden, n_phones]` otherwise."""
    import torch

    if segment.lang == "zh" and segment.word2ph is not None:
        return bert_feature(bert, segment.norm_text, segment.word2ph)
    return torch.zeros(bert.hidden_size, len(segment.phones), dtype=torch.float32)


def phones_and_bert(text: str, mode: str, bert: Bert) -> tuple[list[int], Any, str]:
    """Phone ids, BERT features `[hidden, n_phones]` and normalised text of `text` read in `mode`."""
    return phones_and_bert_many([text], mode, bert)[0]


def phones_and_bert_many(texts: list[str], mode: str, bert: Bert) -> list[tuple[list[int], Any, str]]:
    """:func:`phones_and_bert` for several texts (a request's fragments) with one BERT forward for all of them."""
    import torch

    per_text = [segments_for_mode(text, mode) for text in texts]
    zh = [s for segments in per_text for s in segments if s.lang == "zh" and s.word2ph is not None]
    found = dict(zip(map(id, zh), bert_features(bert, [(s.norm_text, s.word2ph) for s in zh]), strict=True))
    out = []
    for segments in per_text:
        feats = [found[id(s)] if id(s) in found else segment_features(bert, s) for s in segments]
        phones = [p for s in segments for p in s.phones]
        norm = "".join(s.norm_text for s in segments)
        out.append((cleaned_text_to_sequence(phones), torch.cat(feats, dim=1), norm))
    return out
