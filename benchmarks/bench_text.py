"""Text-frontend throughput: sentences per second for each language and for the mixed modes.

Usage: python benchmarks/bench_text.py [--golden ../shared/fixtures/text] [--repeat 3]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "text"
    ap.add_argument("--golden", type=Path, default=default if default.exists() else None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'language':<9}{'sentences':>10}{'sent/s':>10}")
    for name, items in load_sentences(args.golden).items():
        print(f"{name:<9}{len(items):>10}{bench(name, items, args.repeat):>10.1f}")


if __name__ == "__main__":
    main()
