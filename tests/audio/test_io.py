import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf

from mockvox.audio.io import AudioError, load_audio, resample, write_wav
from tests.conftest import tone_bursts


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg"])
def test_every_format_loads_mono_float32_at_the_requested_rate(write_audio, suffix):
    audio = tone_bursts(44100, [("tone", 1.0)])
    stereo = np.stack([audio, 0.5 * audio], axis=1)
    path = write_audio(f"clip{suffix}", stereo, 44100)
    out, sr = load_audio(path, 32000)
    assert sr == 32000 and out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 32000) < 2000  # mp3 adds encoder delay/padding
    expected_peak = 0.75 * np.abs(audio).max()  # the two channels are averaged
    assert np.abs(out).max() == pytest.approx(expected_peak, rel=0.05)


def test_native_rate_kept_without_target(write_audio):
    out, sr = load_audio(write_audio("a.wav", tone_bursts(22050, [("tone", 0.5)]), 22050))
    assert sr == 22050 and len(out) == 11025


def test_resample_preserves_a_tone():
    sr_in, sr_out = 48000, 32000
    x = np.sin(2 * np.pi * 440 * np.arange(sr_in) / sr_in).astype(np.float32)
    y = resample(x, sr_in, sr_out)
    assert len(y) == sr_out
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) - 440) <= 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4), "corrupt"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 100), "unsupported"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path, 32000)


def test_unsupported_extension_is_named(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(AudioError, match="accepted formats"):
        load_audio(path)


def test_zero_length_silent_and_too_long(tmp_path, write_audio):
    empty = tmp_path / "zero.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 32000)
    with pytest.raises(AudioError, match="zero length"):
        load_audio(empty)
    with pytest.raises(AudioError, match="silent"):
        load_audio(write_audio("silent.wav", np.zeros(32000, dtype=np.float32)))
    with pytest.raises(AudioError, match="longer than the 1 s limit"):
        load_audio(write_audio("long.wav", tone_bursts(32000, [("tone", 2.0)])), max_seconds=1)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_write_wav_is_int16_and_leaves_no_temporary(tmp_path):
    path = write_wav(tmp_path / "out" / "x.wav", np.array([0.0, 0.5, -1.5], dtype=np.float32), 32000)
    data, sr = sf.read(path, dtype="int16")
    assert sr == 32000 and data.tolist() == [0, 16383, -32767]
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.wav"]


_FAKE_FFMPEG = """#!{python}
import json, struct, sys
args = sys.argv[1:]
with open({log!r}, "w") as log:
    json.dump(args, log)
mode, rate, channels = {mode!r}, {rate}, {channels}
if mode == "fail":
    sys.stderr.write(args[args.index("-i") + 1] + ": Invalid data found when processing input\\n")
    sys.exit(1)
out = sys.stdout.buffer
fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
out.write(b"RIFF\\xff\\xff\\xff\\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"LIST\\x04\\x00\\x00\\x00INFO")
out.write(b"data\\xff\\xff\\xff\\xff")
second = struct.pack("<f", 0.5) * rate * channels + struct.pack("<f", -0.5) * rate * channels
try:
    for _ in range(10**6 if mode == "endless" else 1):
        out.write(second)
except BrokenPipeError:
    sys.exit(1)
"""


def _fake_ffmpeg(tmp_path, monkeypatch, mode: str, rate: int = 16000, channels: int = 1):
    """Put a stand-in ``ffmpeg`` first on PATH that logs its arguments and writes a float WAV to stdout."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "ffmpeg"
    log = tmp_path / "ffmpeg-args.json"
    script.write_text(_FAKE_FFMPEG.format(python=sys.executable, log=str(log), mode=mode, rate=rate, channels=channels))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    clip = tmp_path / "clip.m4a"
    clip.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))  # libsndfile cannot read it: ffmpeg's turn
    return clip, log


def test_ffmpeg_fallback_asks_for_bounded_mono(tmp_path, monkeypatch):
    clip, log = _fake_ffmpeg(tmp_path, monkeypatch, "once")
    audio, sr = load_audio(clip, max_seconds=30)
    assert sr == 16000 and audio.dtype == np.float32 and audio.shape == (32000,)
    args = json.loads(log.read_text())
    assert args[args.index("-ac") + 1] == "1" and args[args.index("-t") + 1] == "31"


def test_ffmpeg_output_past_the_limit_is_cut_off(tmp_path, monkeypatch):
    clip, _ = _fake_ffmpeg(tmp_path, monkeypatch, "endless")
    with pytest.raises(AudioError, match="clip.m4a: more than 5 s of audio decoded; longer than the 5 s limit"):
        load_audio(clip, max_seconds=5)


@pytest.mark.parametrize(("rate", "channels"), [(1000, 1), (16000, 2)])
def test_ffmpeg_output_of_another_layout_is_refused(tmp_path, monkeypatch, rate, channels):
    clip, _ = _fake_ffmpeg(tmp_path, monkeypatch, "endless", rate, channels)
    with pytest.raises(AudioError, match=f"{channels} channel.s. at {rate} Hz from ffmpeg; accepted: mono"):
        load_audio(clip)


def test_ffmpeg_errors_name_the_file_without_its_folder(tmp_path, monkeypatch):
    clip, _ = _fake_ffmpeg(tmp_path, monkeypatch, "fail")
    with pytest.raises(AudioError, match="unsupported or corrupt audio .ffmpeg: clip.m4a: Invalid data") as caught:
        load_audio(clip)
    assert str(tmp_path) not in str(caught.value)
