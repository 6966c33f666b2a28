from pathlib import Path

import numpy as np
import pytest
from pyannote.core import SlidingWindow, SlidingWindowFeature

from skseg.binarize import Binarize, binarize, hysteresis_regions

PEERS = Path(__file__).parent / "data" / "peers"
FRAMES = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)


def read_rttm(path):
    return [
        (float(f[3]), float(f[3]) + float(f[4]))
        for f in (line.split() for line in open(path))
        if f
    ]


@pytest.mark.parametrize(
    "key, rttm, params",
    [
        ("speech", "vad_pyannote407_onset0.5.rttm", (0.5, 0.5, 0.0, 0.0)),
        ("speech", "vad_pyannote407_defaults.rttm", (0.767, 0.377, 0.136, 0.067)),
        ("overlap", "osd_pyannote340_onset0.5.rttm", (0.5, 0.5, 0.0, 0.0)),
        ("overlap", "osd_pyannote340_defaults.rttm", (0.430, 0.320, 0.091, 0.144)),
    ],
)
def test_binarize_matches_pyannote_pipelines(reference_scores, key, rttm, params):
    scores = SlidingWindowFeature(reference_scores[key], FRAMES)
    mine = [(s.start, s.end) for s in Binarize(*params)(scores).itersegments()]
    ref = read_rttm(PEERS / rttm)
    assert len(mine) == len(ref)
    # RTTM keeps milliseconds
    assert np.abs(np.array(mine) - np.array(ref)).max() <= 1e-3 + 1e-9


def reference_loop(x, t, onset, offset):
    # pyannote.audio's Binarize loop, verbatim in spirit
    out, start, active = [], t[0], x[0] > onset
    for ti, y in zip(t[1:], x[1:], strict=False):
        if active and y < offset:
            out.append((start, ti))
            start, active = ti, False
        elif not active and y > onset:
            start, active = ti, True
    if active:
        out.append((start, t[-1]))
    return out


@pytest.mark.parametrize(
    "onset, offset", [(0.5, 0.5), (0.7, 0.3), (0.3, 0.7), (0.5, 0.0)]
)
def test_vectorised_hysteresis_equals_loop(onset, offset):
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = rng.random(rng.integers(1, 60))
        x[rng.random(len(x)) < 0.1] = onset  # ties with the thresholds
        x[rng.random(len(x)) < 0.1] = offset
        x[rng.random(len(x)) < 0.2] = (onset + offset) / 2  # between: flips
        x[rng.random(len(x)) < 0.05] = np.nan
        t = np.arange(len(x)) * 0.5
        assert hysteresis_regions(x, t, onset, offset) == reference_loop(
            x, t, onset, offset
        )


def test_gap_filling_before_short_region_removal():
    frames = SlidingWindow(start=0.0, duration=1.0, step=1.0)
    x = np.array([0, 1, 0, 1, 0, 0, 0, 1, 0], dtype=float)[:, None]
    scores = SlidingWindowFeature(x, frames)
    # regions [1.5,2.5], [3.5,4.5], [7.5,8.5]; gap 1 s < 1.5 merges the first two
    out = Binarize(0.5, 0.5, min_duration_on=1.5, min_duration_off=1.5)(scores)
    assert [(s.start, s.end) for s in out.itersegments()] == [(1.5, 4.5)]
    # without gap filling, all three are shorter than 1.5 s and vanish
    assert len(Binarize(0.5, 0.5, min_duration_on=1.5)(scores)) == 0


def test_offset_zero_is_honoured_and_none_means_onset():
    assert Binarize(0.6).offset == 0.6
    assert Binarize(0.6, 0.0).offset == 0.0


def test_batch_binarize_on_wins_and_initial_state():
    x = np.array([[0.45, 0.45, 0.9, 0.45, 0.1]])
    np.testing.assert_array_equal(binarize(x, 0.5, 0.4).astype(int), [[1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(
        binarize(x, 0.5, 0.4, initial_state=False).astype(int), [[0, 0, 1, 1, 0]]
    )
    # 3-D (chunks, classes, frames) rows are independent
    y = np.stack([x, 1 - x])
    assert binarize(y, 0.5, 0.4).shape == (2, 1, 5)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "durations", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.2), (0.136, 0.067), (0.5, 0.8)]
)
def test_region_tracker_fed_in_pieces_is_binarize(seed, durations):
    """The incremental form (what streams emit) gives Binarize's regions, whatever
    the pieces the frames come in, each region once and in order."""
    from skseg.binarize import RegionTracker

    rng = np.random.default_rng(seed)
    # slow random walks: regions, gaps and short blips of every length
    x = np.clip(np.cumsum(rng.normal(0, 0.15, 600)) % 2.0 - 0.5, 0, 1)
    x = x.astype(np.float32)
    onset, offset = sorted(rng.uniform(0.2, 0.8, 2))[::-1]
    on, off = durations
    expected = Binarize(onset, offset, min_duration_on=on, min_duration_off=off)(
        SlidingWindowFeature(x[:, None], FRAMES)
    )
    starts = FRAMES.start + np.arange(len(x) + 1) * FRAMES.step
    times = 0.5 * (starts + (starts + FRAMES.duration))
    tracker = RegionTracker(min_duration_on=on, min_duration_off=off)
    got, i = [], 0
    while i < len(x):
        j = min(len(x), i + int(rng.integers(1, 40)))
        got += tracker.push(x[i:j] > onset, x[i:j] < offset, times[i:j], times[j])
        i = j
    got += tracker.close()
    assert got == list(expected.itersegments())
