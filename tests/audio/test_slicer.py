import numpy as np
import pytest

from mockvox.audio.slicer import Slicer, SlicerConfig, loudness_mix, rms_curve
from tests.conftest import tone_bursts

SR = 32000


def reference_rms(samples, win, hop):
    """librosa-style framing, written plainly: zero padding of win//2, mean of squares per frame."""
    y = np.pad(samples.astype(np.float64), (win // 2, win // 2))
    n = 1 + (len(y) - win) // hop
    return np.array([np.sqrt(np.mean(y[k * hop : k * hop + win] ** 2)) for k in range(n)])


def reference_tags(rms, threshold, min_length, min_interval, max_sil_kept):
    """The official per-frame state machine (facts from gpt-sovits.md §1.1), one frame at a time."""
    tags, silence_start, clip_start = [], None, 0
    for i, value in enumerate(rms):
        if value < threshold:
            if silence_start is None:
                silence_start = i
            continue
        if silence_start is None:
            continue
        leading = silence_start == 0 and i > max_sil_kept
        middle = i - silence_start >= min_interval and i - clip_start >= min_length
        if not leading and not middle:
            silence_start = None
            continue
        if i - silence_start <= max_sil_kept:
            pos = int(rms[silence_start : i + 1].argmin()) + silence_start
            tags.append((0, pos) if silence_start == 0 else (pos, pos))
            clip_start = pos
        elif i - silence_start <= max_sil_kept * 2:
            pos = int(rms[i - max_sil_kept : silence_start + max_sil_kept + 1].argmin()) + i - max_sil_kept
            pos_l = int(rms[silence_start : silence_start + max_sil_kept + 1].argmin()) + silence_start
            pos_r = int(rms[i - max_sil_kept : i + 1].argmin()) + i - max_sil_kept
            if silence_start == 0:
                tags.append((0, pos_r))
                clip_start = pos_r
            else:
                tags.append((min(pos_l, pos), max(pos_r, pos)))
                clip_start = max(pos_r, pos)
        else:
            pos_l = int(rms[silence_start : silence_start + max_sil_kept + 1].argmin()) + silence_start
            pos_r = int(rms[i - max_sil_kept : i + 1].argmin()) + i - max_sil_kept
            tags.append((0, pos_r) if silence_start == 0 else (pos_l, pos_r))
            clip_start = pos_r
        silence_start = None
    n = len(rms)
    if silence_start is not None and n - silence_start >= min_interval:
        end = min(n, silence_start + max_sil_kept)
        tags.append((int(rms[silence_start : end + 1].argmin()) + silence_start, n + 1))
    return tags


def test_rms_matches_plain_framing():
    x = np.random.default_rng(0).standard_normal(10007).astype(np.float32)
    np.testing.assert_allclose(rms_curve(x, 1280, 320), reference_rms(x, 1280, 320), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_silence_decisions_match_the_official_state_machine(seed):
    rng = np.random.default_rng(seed)
    layout = []
    for _ in range(12):  # speech-like bursts and pauses of every length class (short, <=2x kept, longer)
        layout += [("tone", rng.uniform(0.3, 6.0)), ("sil", rng.choice([0.05, 0.2, 0.4, 0.7, 1.2, 3.0]))]
    if seed % 2:
        layout.insert(0, ("sil", 1.5))  # leading silence
    audio = tone_bursts(SR, layout) + 0.002 * rng.standard_normal(1).astype(np.float32)
    audio += 0.001 * rng.standard_normal(len(audio)).astype(np.float32)
    slicer = Slicer(SR, SlicerConfig(max_length_ms=None))
    rms = rms_curve(audio, slicer.win, slicer.hop)
    expected = reference_tags(rms, slicer.threshold, slicer.min_length, slicer.min_interval, slicer.max_sil_kept)
    assert slicer.silence_tags(rms) == expected
    assert expected, "the layout must produce cuts"


def test_cut_points_fall_in_the_known_silences():
    layout = [("tone", 5.0), ("sil", 1.0), ("tone", 4.5), ("sil", 0.6), ("tone", 6.0), ("sil", 2.0)]
    audio = tone_bursts(SR, layout)
    slices = Slicer(SR).slice(audio)
    assert len(slices) == 3
    bounds = np.cumsum([0] + [round(s * SR) for _, s in layout])
    for piece, (tone_start, tone_end) in zip(
        slices, [(bounds[0], bounds[1]), (bounds[2], bounds[3]), (bounds[4], bounds[5])], strict=True
    ):
        # every slice holds its whole tone and at most max_sil_kept (500 ms) of silence on each side
        assert piece.start <= tone_start and piece.end >= tone_end - 320
        assert tone_start - piece.start <= 0.5 * SR + 640 and piece.end - tone_end <= 0.5 * SR + 640
    assert slices[-1].end < len(audio) - SR  # trailing silence dropped


def test_short_pause_inside_min_length_is_not_cut():
    audio = tone_bursts(SR, [("tone", 1.5), ("sil", 0.5), ("tone", 1.5), ("sil", 0.5), ("tone", 3.0)])
    assert len(Slicer(SR).slice(audio)) == 1  # the first pause comes before 4 s of clip: kept


def test_edge_cases_do_not_crash():
    slicer = Slicer(SR)
    short = tone_bursts(SR, [("tone", 1.0)])
    assert [(s.start, s.end) for s in slicer.slice(short)] == [(0, len(short))]  # shorter than min_length
    steady = tone_bursts(SR, [("tone", 12.0)])
    pieces = Slicer(SR, SlicerConfig(max_length_ms=None)).slice(steady)  # no cut point at all
    assert [(s.start, s.end) for s in pieces] == [(0, len(steady))]


def test_max_length_splits_long_speech_at_quiet_frames():
    rng = np.random.default_rng(1)
    t = np.arange(50 * SR) / SR
    envelope = 0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 0.17 * t))  # loud/quiet but never below the threshold
    audio = (0.4 * envelope * np.sin(2 * np.pi * 200 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    pieces = Slicer(SR, SlicerConfig(max_length_ms=15000)).slice(audio)
    lengths = [(p.end - p.start) / SR for p in pieces]
    assert len(pieces) >= 4 and max(lengths) <= 15.0 and min(lengths) >= 4.0
    assert pieces[0].start == 0 and pieces[-1].end == len(audio)
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))  # nothing lost
    for p in pieces[:-1]:  # cuts land in the quiet half of the envelope
        assert envelope[p.end] < 0.6


def test_loudness_mix_is_the_official_gain():
    x = np.array([0.1, -0.2, 0.4], dtype=np.float32)
    np.testing.assert_allclose(loudness_mix(x), x / 0.4 * 0.225 + 0.75 * x, rtol=1e-6)
    assert np.abs(loudness_mix(2 * x / 0.4)).max() <= 1.0


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="min_length_ms"):
        SlicerConfig(min_length_ms=100, min_interval_ms=300)
