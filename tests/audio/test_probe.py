"""Decoding bombs and lying headers crafted in ``tmp_path``: the probe rejects them, the bounded decoder stays small."""

import dataclasses
import json
import struct
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from mockvox.audio.io import AudioError, load_audio
from mockvox.audio.probe import AudioLimits, UnreadableAudio, probe_audio, read_audio_bounded
from tests.conftest import REPO_ROOT


def _speech_like(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    """A harmonic tone with noise, loud enough to pass every check; [frames, channels] when stereo."""
    t = np.arange(int(sr * seconds)) / sr
    noise = 0.05 * np.random.default_rng(0).standard_normal(t.size)
    mono = (0.3 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 360 * t) + noise).astype(np.float32)
    return mono if channels == 1 else np.stack([mono, 0.5 * mono], axis=1)


def _write_blocks(path, value: float, sr: int, channels: int, seconds: int, fmt: str = "FLAC"):
    """A constant signal written one second at a time (libsndfile's Vorbis writer crashes on big single writes)."""
    second = np.full((sr, channels), value, dtype=np.float32)
    with sf.SoundFile(path, "w", sr, channels, format=fmt, subtype="PCM_16") as out:
        for _ in range(seconds):
            out.write(second)
    return path


def _flac_with_total(tmp_path, total: int):
    """A 16-sample FLAC whose STREAMINFO total-samples field (36 bits at byte 21.5) is patched to ``total``."""
    path = tmp_path / "liar.flac"
    sf.write(path, np.full(16, 0.1, dtype=np.float32), 16000, format="FLAC", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO is the first block, its body at byte 8
    packed = int.from_bytes(data[18:26], "big")  # rate (20 bits), channels (3), bits (5), total samples (36)
    data[18:26] = ((packed & ~((1 << 36) - 1)) | total).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def _wav_patched(tmp_path, name: str, rate: int | None = None, data_size: int | None = None):
    """A 1 s mono 16 kHz PCM_16 WAV with its fmt sample rate or data-chunk size overwritten."""
    path = tmp_path / name
    sf.write(path, _speech_like(16000, 1.0), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt " and data[36:40] == b"data"
    if rate is not None:
        data[24:32] = struct.pack("<II", rate, rate * 2)  # sample rate, byte rate
    if data_size is not None:
        data[40:44] = struct.pack("<I", data_size)
    path.write_bytes(bytes(data))
    return path


def _rejects(call, path, match: str) -> str:
    """Run ``call(path)``, expect an AudioError matching ``match`` that names the file but not its folder."""
    with pytest.raises(AudioError, match=match) as caught:
        call(path)
    message = str(caught.value)
    assert path.name in message and str(path.parent) not in message
    return message


def test_flac_declaring_2_pow_36_samples_is_rejected_from_its_header(tmp_path):
    path = _flac_with_total(tmp_path, (1 << 36) - 1)
    assert path.stat().st_size < 200
    assert sf.info(path).frames == (1 << 36) - 1  # libsndfile trusts STREAMINFO
    _rejects(probe_audio, path, r"4294967\.3 s is longer than the 3600 s limit")
    _rejects(lambda p: probe_audio(p, AudioLimits(max_seconds=1e9)), path, r"times the file size as 16-bit PCM")
    _rejects(load_audio, path, "longer than")


def test_flac_of_unknown_length_is_left_to_another_decoder(tmp_path):
    path = _flac_with_total(tmp_path, 0)
    assert sf.info(path).frames == 2**63 - 1  # libsndfile's SF_COUNT_MAX
    with pytest.raises(UnreadableAudio, match="liar.flac: undecodable audio header .it does not declare the length"):
        probe_audio(path)
    assert issubclass(UnreadableAudio, AudioError) and issubclass(AudioError, ValueError)


def test_mp3_whose_xing_header_claims_billions_of_frames_is_rejected(tmp_path):
    path = tmp_path / "liar.mp3"
    sf.write(path, _speech_like(44100, 2.0), 44100, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(path.read_bytes())
    tag = max(data.find(b"Xing"), data.find(b"Info"))
    assert tag > 0 and data[tag + 7] & 1  # the frame-count field is present
    data[tag + 8 : tag + 12] = struct.pack(">I", 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    assert sf.info(path).frames > 10**12  # libsndfile (libmpg123) trusts the Xing frame count
    _rejects(probe_audio, path, "longer than the 3600 s limit")
    _rejects(lambda p: probe_audio(p, AudioLimits(max_seconds=1e9)), path, "times the file size as 16-bit PCM")


def test_eight_channel_flac_is_rejected(tmp_path):
    path = _write_blocks(tmp_path / "surround.flac", 0.25, 48000, 8, 1)
    assert sf.info(path).channels == 8
    _rejects(probe_audio, path, "8 channels; accepted: 1 to 2")
    _rejects(load_audio, path, "8 channels")


def test_constant_flac_compressing_beyond_the_ratio_is_rejected(tmp_path):
    path = _write_blocks(tmp_path / "constant.flac", 0.25, 48000, 1, 120)
    info = sf.info(path)
    assert info.frames == 120 * 48000 and info.frames * 2 / path.stat().st_size > 256
    message = _rejects(probe_audio, path, "times the file size as 16-bit PCM; accepted: at most 256 times")
    assert "120.0 s of 1-channel FLAC" in message
    assert probe_audio(path, AudioLimits(max_ratio=1e6)).seconds == 120.0  # the ratio rule alone fired


@pytest.mark.parametrize("rate", [1, 655000])
def test_wav_at_an_absurd_sample_rate_is_rejected(tmp_path, rate):
    path = _wav_patched(tmp_path, f"rate{rate}.wav", rate=rate)
    assert sf.info(path).samplerate == rate
    _rejects(load_audio, path, f"sample rate {rate} Hz; accepted: 8000-192000 Hz")


@pytest.mark.parametrize("claim", [10**9, 0xFFFFFFFF])
def test_wav_data_chunk_claiming_more_than_the_file_is_clamped(tmp_path, claim):
    path = _wav_patched(tmp_path, "liar.wav", data_size=claim)
    probe = probe_audio(path)  # libsndfile 1.2.2 clamps the data size to the bytes present
    assert (probe.frames, probe.seconds) == (16000, 1.0)
    audio, sr = load_audio(path)
    assert (audio.size, sr) == (16000, 16000)


def test_pcm_header_declaring_more_bytes_than_the_file_is_rejected(tmp_path, monkeypatch):
    path = _wav_patched(tmp_path, "liar.wav")
    liar = types.SimpleNamespace(format="WAV", subtype="PCM_24", channels=2, samplerate=16000, frames=10**6)
    monkeypatch.setattr(sf, "info", lambda _: liar)  # what a libsndfile that did not clamp would report
    _rejects(probe_audio, path, r"declares 6000000 bytes of PCM_24 audio but the file has 32044 bytes")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "undecodable audio header"),
        (lambda p: p.write_bytes(bytes(range(256)) * 40), "undecodable audio header"),
    ],
)
def test_truncated_and_garbage_headers(tmp_path, make, message):
    path = tmp_path / "broken.wav"
    make(path)
    _rejects(probe_audio, path, message)
    _rejects(load_audio, path, "empty" if message == "empty" else "unsupported or corrupt audio")


def test_truncated_flac_data_is_corrupt(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, _speech_like(44100, 3.0), 44100, format="FLAC", subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert probe_audio(path).seconds == 3.0  # the header still declares the whole
    _rejects(read_audio_bounded, path, "corrupt audio data")


def test_missing_file_is_named_without_its_folder(tmp_path):
    _rejects(load_audio, tmp_path / "gone.wav", "no such file")


@pytest.mark.parametrize(
    ("name", "sr", "channels", "fmt", "subtype"),
    [
        ("speech.wav", 16000, 1, "WAV", "PCM_16"),
        ("speech.flac", 44100, 2, "FLAC", "PCM_16"),
        ("speech.ogg", 44100, 1, "OGG", "VORBIS"),
        ("speech.mp3", 44100, 2, "MP3", "MPEG_LAYER_III"),
    ],
)
def test_ordinary_recordings_pass_with_their_duration(tmp_path, name, sr, channels, fmt, subtype):
    path = tmp_path / name
    sf.write(path, _speech_like(sr, 5.0, channels), sr, format=fmt, subtype=subtype)
    probe = probe_audio(path)
    assert (probe.format, probe.channels, probe.sample_rate, probe.size) == (fmt, channels, sr, path.stat().st_size)
    assert probe.seconds == pytest.approx(5.0, abs=0.1)  # mp3 adds encoder padding
    audio, rate = read_audio_bounded(path, AudioLimits(block_seconds=1.0), probe)
    assert rate == sr and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - probe.frames) < sr // 10


def test_stereo_is_mixed_to_mono_block_by_block(tmp_path):
    stereo = _speech_like(16000, 3.0, channels=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    audio, sr = read_audio_bounded(path, AudioLimits(block_seconds=0.7))
    assert sr == 16000 and audio.shape == (48000,)
    np.testing.assert_allclose(audio, stereo.mean(axis=1), atol=1e-6)


def test_buffer_grows_when_the_header_declares_less(tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, _speech_like(16000, 3.0), 16000, subtype="FLOAT")
    understated = dataclasses.replace(probe_audio(path), frames=100)
    audio, _ = read_audio_bounded(path, AudioLimits(block_seconds=0.5), understated)
    np.testing.assert_array_equal(audio, sf.read(path, dtype="float32")[0])


def test_a_file_swapped_after_probing_is_refused(tmp_path):
    path = tmp_path / "swapped.wav"
    sf.write(path, _speech_like(16000, 1.0), 16000)
    probe = probe_audio(path)
    sf.write(path, _speech_like(16000, 1.0, channels=2), 16000)
    _rejects(lambda p: read_audio_bounded(p, probe=probe), path, "changed after its header was checked")


def test_decoding_stops_once_past_max_seconds(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, _speech_like(16000, 20.0), 16000, subtype="PCM_16")
    blocks = []
    read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, *a, **k: blocks.append(1) or read(self, *a, **k))
    limits = AudioLimits(max_seconds=2.0, block_seconds=0.5)
    _rejects(lambda p: read_audio_bounded(p, limits, probe_audio(p)), path, "more than 2 s of audio decoded")
    assert len(blocks) == 5  # 2 s in 0.5 s blocks, then the block that crosses the limit; not all 40
    _rejects(lambda p: load_audio(p, max_seconds=2.0), path, "20.0 s is longer than the 2 s limit")


_RSS_SCRIPT = """
import dataclasses, json, resource, sys
from mockvox.audio.io import AudioError, load_audio
from mockvox.audio.probe import AudioLimits, probe_audio, read_audio_bounded
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
lax = AudioLimits(max_channels=8, max_ratio=1e9)
strict = dataclasses.replace(lax, max_seconds=100)
for call in (
    lambda: load_audio(sys.argv[1]),
    lambda: load_audio(sys.argv[2]),
    lambda: read_audio_bounded(sys.argv[1], strict, probe_audio(sys.argv[1], lax)),
):
    try:
        call()
    except AudioError as err:
        errors.append(str(err))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_kb": peak, "errors": errors}))
"""


def test_a_bomb_decodes_in_bounded_memory(tmp_path):
    bomb = _write_blocks(tmp_path / "bomb.flac", 0.25, 48000, 8, 300)
    info = sf.info(bomb)
    assert info.frames * info.channels * 4 > 400e6 > 1000 * bomb.stat().st_size  # 460 MB as float32, from ~100 kB
    liar = _flac_with_total(tmp_path, (1 << 36) - 1)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(bomb), str(liar)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["errors"]) == 3, report
    assert "8 channels" in report["errors"][0] and "longer than" in report["errors"][1]
    assert "more than 100 s of audio decoded" in report["errors"][2]
    assert all(str(tmp_path) not in e for e in report["errors"])
    assert (report["peak_kb"] - report["base_kb"]) * 1024 < 200e6, report
