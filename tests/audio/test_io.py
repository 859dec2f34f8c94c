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
