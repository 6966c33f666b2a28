"""OverlapAdd, the incremental overlap-add: chunks added one by one and frames
released in pieces (a stream) give aggregate()'s frames bit for bit, and the
buffers hold about one chunk however long the input."""

import numpy as np
import pytest
from pyannote.core import SlidingWindow, SlidingWindowFeature

from skseg.aggregation import OverlapAdd, aggregate

CHUNKS = SlidingWindow(start=0.0, duration=5.0, step=0.5)
FRAMES = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)


@pytest.mark.parametrize("hamming", [True, False])
@pytest.mark.parametrize("with_nan", [False, True])
def test_released_in_pieces_is_aggregate(hamming, with_nan):
    rng = np.random.default_rng(0)
    data = rng.random((40, 293, 2)).astype(np.float32)
    if with_nan:
        data[3, 10:20, 0] = np.nan
    expected = aggregate(
        SlidingWindowFeature(data, CHUNKS), FRAMES, hamming=hamming, crop=False
    )
    live = OverlapAdd(CHUNKS, FRAMES, hamming=hamming)
    parts, capacity = [], []
    for score in data:
        live.add(score)
        # what is final now, in pieces of random size
        final = live.placement(live.num_chunks)
        while live.released < final:
            stop = min(final, live.released + int(rng.integers(1, 50)))
            parts.append(live.release(stop))
        capacity.append(live.buffered_frames)
    parts.append(live.release(live.num_frames()))
    got = np.concatenate(parts)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.data)
    assert max(capacity) <= 2 * 2 * 293  # about a chunk, not the whole input
