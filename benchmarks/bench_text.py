"""Text-frontend throughput: sentences per second for each language and for the mixed modes.

Usage: python benchmarks/bench_text.py [--golden ../shared/fixtures/text] [--repeat 3] [--bert]
``--bert`` adds the Mandarin BERT of a request cut into fragments: one call per fragment (what upstream does) against
one padded batch for all of them (``phones_and_bert_many``), with a full-size chinese-roberta-wwm-ext-large shape
(random weights, a vocabulary of the sample characters; 2 threads).
Sentences come from the golden sets when present, else from the built-in samples below. Each language is
warmed up once (dictionary loading, jieba, mecab) before timing, so the numbers are steady-state.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mockvox.text import clean_text, phones_for_mode

SAMPLES = {
    "zh": ["今天是2024年5月1日，气温25度。", "我们一起去公园散步吧！", "这个价格是3.5元，打八折。"],
    "en": ["The meeting starts at 9:30 a.m. on Monday.", "She paid $42.99 for the shoes.", "NASA launched it in 1977."],
    "ja": ["こんにちは、今日はいい天気ですね。", "学校に行った？", "東京タワーに行きましょう！"],
    "ko": ["안녕하세요, 반갑습니다.", "사과 3개 주세요.", "오늘 날씨가 좋네요!"],
    "yue": ["佢個鋤頭太短啦。", "我哋今晚去飲茶好唔好？", "呢度有五個人。"],
    "mixed": ["我爱Python编程。", "今日はgood dayですね。", "Hello，你好吗？"],
}
MIXED_MODES = ("zh", "ja", "auto")


def load_sentences(golden: Path | None) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for name, texts in SAMPLES.items():
        path = golden / f"{name}.jsonl" if golden else None
        if path and path.exists():
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            out[name] = [(r["text"], r["language"]) for r in records]
        else:
            modes = MIXED_MODES if name == "mixed" else (name,)
            out[name] = [(t, modes[i % len(modes)]) for i, t in enumerate(texts)]
    return out


def bench(name: str, items: list[tuple[str, str]], repeat: int) -> float:
    fn = phones_for_mode if name == "mixed" else clean_text
    for text, lang in items[:2]:
        fn(text, lang)
    start = time.perf_counter()
    for _ in range(repeat):
        for text, lang in items:
            fn(text, lang)
    return repeat * len(items) / (time.perf_counter() - start)


BERT_TEXT = "今天天气很好，我们一起去公园散步吧。这个价格是三块五，打八折以后更便宜。明天早上九点开会，请大家准时到场。"


def bench_bert(repeat: int) -> None:
    import tempfile

    import torch
    import transformers

    from mockvox.text.bert import load_bert, phones_and_bert, phones_and_bert_many
    from mockvox.text.split import split_text

    torch.set_num_threads(2)
    pieces = split_text(BERT_TEXT, "cut5", "zh")
    with tempfile.TemporaryDirectory() as tmp:
        chars = sorted(set(BERT_TEXT + "".join(t for ts in SAMPLES.values() for t in ts)))
        (Path(tmp) / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n")
        transformers.BertTokenizer(str(Path(tmp) / "vocab.txt")).save_pretrained(tmp)
        config = transformers.BertConfig(vocab_size=len(chars) + 5, hidden_size=1024, num_hidden_layers=24,
                                         num_attention_heads=16, intermediate_size=4096)  # fmt: skip
        transformers.BertForMaskedLM(config).save_pretrained(tmp)
        bert = load_bert(tmp)
    one_by_one = lambda: [phones_and_bert(t, "zh", bert) for t in pieces]  # noqa: E731
    batched = lambda: phones_and_bert_many(pieces, "zh", bert)  # noqa: E731
    times = {"one call per fragment": [], "one batch": []}
    one_by_one(), batched()  # warm-up
    for _ in range(repeat):
        for name, fn in zip(times, (one_by_one, batched), strict=True):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    print(f"BERT over {len(pieces)} fragments ({len(BERT_TEXT)} characters), full-size shape, 2 threads:")
    base = min(times["one call per fragment"])
    for name, values in times.items():
        print(f"  {name:24} {min(values):.3f} s  ({base / min(values):.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "text"
    ap.add_argument("--golden", type=Path, default=default if default.exists() else None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bert", action="store_true", help="also time the Mandarin BERT per fragment against one batch")
    args = ap.parse_args()
    print(f"{'language':<9}{'sentences':>10}{'sent/s':>10}")
    for name, items in load_sentences(args.golden).items():
        print(f"{name:<9}{len(items):>10}{bench(name, items, args.repeat):>10.1f}")
    if args.bert:
        bench_bert(args.repeat)


if __name__ == "__main__":
    main()
