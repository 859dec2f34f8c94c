"""Regenerate the bundled sample voice in ``samples/`` with espeak-ng (``apt-get install espeak-ng``).

One recording per language (zh, can, en, ja, ko): a few sentences separated by pauses long enough for the
slicer, mono at espeak-ng's 22.05 kHz, stored as Ogg Vorbis (``samples/voice_{lang}.ogg``, small enough to commit)
plus the sentences (``samples/voice_{lang}.txt``). Run: ``python scripts/make_sample_voice.py``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

OUT = Path(__file__).resolve().parents[1] / "samples"
SR = 22050
PAUSE_S = 0.8
# Debian's espeak-ng cmn dictionary lacks Hanzi readings: Mandarin is spoken from tone-numbered pinyin.
VOICES = {"zh": "cmn-latn-pinyin", "can": "yue", "en": "en-us", "ja": "ja", "ko": "ko"}
SENTENCES = {
    "zh": [
        "今天天气很好，我们一起去公园散步吧。",
        "这个周末我打算在家里读一本有趣的书。",
        "请问去火车站应该怎么走，离这里远不远？",
    ],
    "can": [
        "今日天氣好好，我哋一齊去公園散步啦。",
        "呢個週末我諗住喺屋企睇一本好有趣嘅書。",
        "請問去火車站點樣行，離呢度遠唔遠呀？",
    ],
    "en": [
        "Hello world, this is a test of the voice cloning system.",
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "Please remember to bring your umbrella because it may rain tomorrow.",
    ],
    "ja": [
        "きょうは とても いい てんき ですね。",
        "この しゅうまつは いえで ほんを よみます。",
        "えきへは どうやって いけば いいですか。",
    ],
    "ko": [
        "오늘은 날씨가 정말 좋네요, 같이 공원에 산책하러 가요.",
        "이번 주말에는 집에서 재미있는 책을 읽을 계획입니다.",
        "기차역까지 어떻게 가야 하나요, 여기서 먼가요?",
    ],
}


PINYIN = {
    "今天天气很好，我们一起去公园散步吧。": "jin1 tian1 tian1 qi4 hen3 hao3, wo3 men5 yi4 qi3 qu4 gong1 yuan2 san4 bu4 ba5.",  # noqa: E501
    "这个周末我打算在家里读一本有趣的书。": "zhe4 ge5 zhou1 mo4 wo3 da3 suan4 zai4 jia1 li3 du2 yi4 ben3 you3 qu4 de5 shu1.",  # noqa: E501
    "请问去火车站应该怎么走，离这里远不远？": "qing3 wen4 qu4 huo3 che1 zhan4 ying1 gai1 zen3 me5 zou3, li2 zhe4 li3 yuan3 bu4 yuan3?",  # noqa: E501
}


def speak(text: str, voice: str) -> np.ndarray:
    """One sentence from espeak-ng, resampled to 32 kHz float32."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True, capture_output=True)
    audio, sr = sf.read(io.BytesIO(wav.stdout), dtype="float32")
    return soxr.resample(audio, sr, SR).astype(np.float32) if sr != SR else audio


def main() -> None:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    OUT.mkdir(exist_ok=True)
    pause = np.zeros(int(PAUSE_S * SR), dtype=np.float32)
    for lang, sentences in SENTENCES.items():
        parts = [pause]
        for text in sentences:
            parts += [speak(PINYIN.get(text, text), VOICES[lang]), pause]
        audio = np.concatenate(parts)
        audio *= 0.7 / np.abs(audio).max()
        sf.write(OUT / f"voice_{lang}.ogg", audio, SR, format="OGG", subtype="VORBIS", compression_level=0.7)
        (OUT / f"voice_{lang}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
        print(f"{lang}: {len(audio) / SR:.1f} s")


if __name__ == "__main__":
    main()
