"""Random and adversarial inputs for the differential tests against pyannote.audio.

Plain numpy only, so that the same seed gives bit-identical inputs in skseg's
environment and in pyannote.audio 3.4.0's (numpy 1.26): the reference outputs in
``tests/data/differential/`` are made from these by
``benchmarks/differential_pyannote.py`` and store a digest of each input, so a
generator that drifts fails the tests instead of comparing unrelated cases.

Every case is one file: raw chunk scores ``(num_chunks, 293, 3)`` as the model
gives them (5 s chunks, pyannote.audio >= 3.2 receptive-field frames), the chunk
step, the file length and the hyper-parameters; resegmentation cases add a
baseline diarization. Kinds of scores:

* ``turns``: speakers talking in turns (and overlapping), each chunk's slots a
  random permutation of the speakers it hears, plus noise; an extra speaker absent
  from the baseline (the "third slot active" case) and baseline turns cut at chunk
  edges;
* ``uniform``: white noise in [0, 1);
* ``quantized``: runs of values in {0, 0.25, 0.5, 0.75, 1}: exact ties between
  costs, between summed activations and with the thresholds;
* ``zeros``: ``turns`` with slots and whole chunks set to exactly 0;
* ``saturated``: ``turns`` with scores exactly 0 or 1 (saturated sigmoids), so
  that summed activations tie exactly.
"""

from __future__ import annotations

import hashlib

import numpy as np

SAMPLE_RATE = 16000
CHUNK_DURATION = 5.0
NUM_FRAMES = 293
NUM_SLOTS = 3
# pyannote.audio >= 3.2 frames of pyannote/segmentation (receptive field)
FRAME_START = 0.0
FRAME_DURATION = 991 / SAMPLE_RATE
FRAME_STEP = 270 / SAMPLE_RATE

KINDS = ("turns", "uniform", "quantized", "zeros", "saturated")
STEPS = (0.5, 0.5, 0.5, 1.0, 1.25, 2.5)


def num_chunks(num_samples: int, step: float) -> int:
    """Chunks pyannote's ``Inference.slide`` runs (the last one zero-padded)."""
    window = round(CHUNK_DURATION * SAMPLE_RATE)
    hop = round(step * SAMPLE_RATE)
    full = (num_samples - window) // hop + 1 if num_samples >= window else 0
    padded = num_samples < window or (num_samples - window) % hop > 0
    return full + int(padded)


def _turns(rng: np.random.Generator, duration: float, speakers: list[str]):
    """Random turns: mostly one speaker at a time, some overlaps and silences."""
    turns = []
    t = float(rng.uniform(0.0, 1.0))
    while t < duration:
        length = float(rng.exponential(1.5)) + 0.05
        speaker = speakers[int(rng.integers(len(speakers)))]
        turns.append((t, t + length, speaker))
        if rng.random() < 0.25:  # someone talks over
            other = speakers[int(rng.integers(len(speakers)))]
            start = t + float(rng.uniform(0, length))
            turns.append((start, start + float(rng.exponential(0.7)) + 0.05, other))
        t += length + float(rng.exponential(0.4)) * (rng.random() < 0.6)
    return turns


def _activity(turns, speakers: list[str], times: np.ndarray) -> np.ndarray:
    """``(len(times), len(speakers))`` 0/1 activity of ``turns`` at ``times``."""
    out = np.zeros((len(times), len(speakers)), dtype=np.float32)
    for start, end, label in turns:
        k = speakers.index(label)
        out[(times >= start) & (times < end), k] = 1.0
    return out


def _chunk_scores(
    rng: np.random.Generator,
    turns,
    speakers: list[str],
    n_chunks: int,
    step: float,
    duration: float,
    slots_of: np.ndarray | None = None,
) -> np.ndarray:
    """Each chunk: the up-to-3 loudest speakers it hears, in random slots.

    ``slots_of``, if given (``(n_chunks, 3)`` ints), receives the speaker index
    each slot holds (-1: none); it draws nothing more from ``rng``.
    """
    middles = FRAME_START + np.arange(NUM_FRAMES) * FRAME_STEP + FRAME_DURATION / 2
    scores = np.zeros((n_chunks, NUM_FRAMES, NUM_SLOTS), dtype=np.float32)
    for c in range(n_chunks):
        times = c * step + middles
        active = _activity(turns, speakers, times)
        active[times >= duration] = 0.0  # zero-padded audio is silent
        order = np.argsort(-active.sum(axis=0), kind="stable")[:NUM_SLOTS]
        slots = rng.permutation(NUM_SLOTS)[: len(order)]
        for k, s in zip(order, slots, strict=True):
            scores[c, :, s] = active[:, k]
            if slots_of is not None:
                slots_of[c, s] = k
    # model-like soft scores: noisy logits through a sigmoid
    logits = (scores * 2 - 1) * rng.uniform(2.0, 6.0) + rng.normal(
        0, rng.uniform(0.3, 2.5), size=scores.shape
    )
    return (1 / (1 + np.exp(-logits))).astype(np.float32)


def _baseline(
    rng: np.random.Generator, turns, speakers: list[str], step: float, duration: float
):
    """A degraded copy of the truth: shifted ends, speakers merged, dropped or added."""
    names = [f"spk{k}" for k in range(len(speakers))]
    rng.shuffle(names)
    mode = rng.integers(4)
    baseline = []
    for start, end, label in turns:
        k = speakers.index(label)
        if mode == 1 and k == len(speakers) - 1:
            continue  # the last speaker is missing from the baseline
        name = names[k] if mode != 2 else names[k % 2]  # mode 2: speakers merged
        start += float(rng.normal(0, 0.2))
        end += float(rng.normal(0, 0.2))
        if rng.random() < 0.2:
            # a boundary exactly on a chunk edge (trimmed or not)
            edge = step * int(rng.integers(0, max(1, int(duration / step)) + 1))
            start = edge + float(rng.choice([0.0, 0.25, 0.5, CHUNK_DURATION - 0.25]))
        if end > start:
            baseline.append((round(start, 3), round(end, 3), name))
    if mode == 3:
        # more baseline speakers than slots: spurious short speakers
        for j in range(int(rng.integers(2, 5))):
            start = float(rng.uniform(0, duration))
            baseline.append(
                (round(start, 3), round(start + float(rng.uniform(0.1, 2)), 3), f"x{j}")
            )
    if rng.random() < 0.1:
        # a speaker whose only turn starts after the end of the file
        baseline.append((round(duration + 0.3, 3), round(duration + 1.0, 3), "late"))
    if not baseline:
        baseline.append((0.5, 1.5, "spk0"))
    return sorted(baseline)


def _params(rng: np.random.Generator, kind: str) -> dict:
    which = rng.integers(4)
    if which == 0:
        onset, offset = 0.5, 0.5
    elif which == 1:
        onset, offset = 0.81, 0.481
    elif which == 2 or kind != "quantized":
        onset = float(np.round(rng.uniform(0.1, 0.9), 3))
        offset = float(np.round(rng.uniform(0.1, 0.9), 3))
    else:  # thresholds exactly on quantized values
        onset, offset = [float(v) for v in rng.choice([0.25, 0.5, 0.75], size=2)]
    warm_up = float(
        rng.choice([0.0, 0.05, 0.05, 0.1, np.round(rng.uniform(0, 0.1), 3)])
    )
    durations = rng.integers(3)
    if durations == 0:
        on, off = 0.0, 0.0
    elif durations == 1:
        on, off = 0.055, 0.098
    else:
        on, off = [float(v) for v in np.round(rng.uniform(0, 0.5, size=2), 3)]
    return dict(
        onset=onset,
        offset=offset,
        warm_up=warm_up,
        min_duration_on=on,
        min_duration_off=off,
    )


def case(seed: int, *, baseline: bool = True) -> dict:
    """The inputs of differential case ``seed``.

    Returns a dict with ``scores`` (float32 chunk scores), ``step``,
    ``num_samples``, ``params`` (hyper-parameters), ``kind`` and, when
    ``baseline`` (resegmentation), ``baseline`` as sorted ``(start, end, label)``
    turns; else (speaker segmentation) ``params`` has a ``stitch_threshold``.
    """
    rng = np.random.default_rng([seed, int(baseline)])
    kind = KINDS[seed % len(KINDS)]
    step = float(STEPS[int(rng.integers(len(STEPS)))])
    # whole seconds, odd milliseconds and exact chunk multiples (unpadded last chunk)
    if rng.random() < 0.3:
        # speaker segmentation needs two chunks to stitch (pyannote outputs nobody
        # from a single chunk, a documented deviation of skseg's)
        duration = CHUNK_DURATION + step * int(rng.integers(int(not baseline), 25))
    else:
        duration = float(np.round(rng.uniform(CHUNK_DURATION + 0.001, 30.0), 3))
    num_samples = round(duration * SAMPLE_RATE)
    duration = num_samples / SAMPLE_RATE
    n_chunks = num_chunks(num_samples, step)

    n_speakers = int(rng.integers(1, 6))
    speakers = [f"s{k}" for k in range(n_speakers)]
    turns = _turns(rng, duration, speakers)

    if kind == "uniform":
        # noise held for runs of 1 to 30 frames: many short turns, anywhere
        noise = rng.random((n_chunks, NUM_FRAMES, NUM_SLOTS), dtype=np.float32)
        hold = np.cumsum(rng.random((n_chunks, NUM_FRAMES, 1)) < 0.15, axis=1)
        scores = np.take_along_axis(noise, np.broadcast_to(hold, noise.shape), axis=1)
    elif kind == "quantized":
        levels = np.array([0.0, 0.25, 0.5, 0.75, 1.0], dtype=np.float32)
        runs = rng.integers(0, 5, size=(n_chunks, NUM_FRAMES // 20 + 1, NUM_SLOTS))
        scores = np.repeat(levels[runs], 20, axis=1)[:, :NUM_FRAMES]
        scores = np.ascontiguousarray(scores)
    else:
        scores = _chunk_scores(rng, turns, speakers, n_chunks, step, duration)
        if kind == "zeros":
            silent = rng.random(scores.shape[::2]) < 0.3  # (chunk, slot) pairs
            scores *= ~silent[:, np.newaxis, :]
            scores[rng.random(n_chunks) < 0.1] = 0.0  # whole chunks
        elif kind == "saturated":
            scores = np.where(scores > 0.5, 1.0, 0.0).astype(np.float32)
    out = dict(
        seed=seed,
        kind=kind,
        scores=scores.astype(np.float32),
        step=step,
        num_samples=num_samples,
        params=_params(rng, kind),
    )
    if baseline:
        out["baseline"] = _baseline(rng, turns, speakers, step, duration)
    else:
        # 2.1.1's default, random ones, and 0 (only zero-cost stitches survive)
        threshold = rng.choice(
            [0.39, 0.39, float(np.round(rng.uniform(0.02, 1), 3)), 0.0]
        )
        out["params"]["stitch_threshold"] = float(threshold)
    return out


def digest(inputs: dict) -> str:
    """Short hash of a case's inputs (scores, step, length, baseline, parameters)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(inputs["scores"], dtype="<f4").tobytes())
    h.update(repr((inputs["step"], inputs["num_samples"])).encode())
    h.update(repr(sorted(inputs["params"].items())).encode())
    h.update(repr(inputs.get("baseline")).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------
# speaker diarization: chunk scores *and* (chunk, slot) embeddings
# ---------------------------------------------------------------------------

DIARIZATION_KINDS = ("turns", "saturated", "zeros", "nan", "ties", "single")
EMBEDDING_DIMENSION = 8
LINKAGES = ("centroid",) * 6 + ("average", "complete", "single", "ward", "median")


def _diarization_params(rng: np.random.Generator) -> dict:
    which = int(rng.integers(6))
    counts: dict = {"num_speakers": None, "min_speakers": None, "max_speakers": None}
    if which == 1:
        counts["num_speakers"] = int(rng.integers(1, 6))
    elif which == 2:
        counts["min_speakers"] = int(rng.integers(1, 5))
    elif which == 3:
        counts["max_speakers"] = int(rng.integers(1, 4))
    elif which == 4:
        low = int(rng.integers(1, 4))
        counts["min_speakers"] = low
        counts["max_speakers"] = low + int(rng.integers(0, 3))
    return dict(
        onset=float(rng.choice([0.5, 0.4442, np.round(rng.uniform(0.1, 0.9), 3)])),
        min_duration_off=float(
            rng.choice([0.0, 0.0, 0.098, np.round(rng.uniform(0, 0.6), 3)])
        ),
        threshold=float(rng.choice([0.7045, np.round(rng.uniform(0.1, 1.6), 4)])),
        min_cluster_size=int(rng.choice([1, 2, 3, 12, 15])),
        method=str(LINKAGES[int(rng.integers(len(LINKAGES)))]),
        constrained=bool(rng.random() < 0.3),
        exclude_overlap=bool(rng.random() < 0.8),
        # the embedding network's shortest input: decides when a speaker has
        # too few clean frames (0.025 s .. 1.5 s: 1 to 6 ... 88 frames)
        min_num_samples=int(rng.choice([400, 1600, 8000, 24000])),
        **counts,
    )


def diarization_case(seed: int) -> dict:
    """The inputs of diarization case ``seed``: scores, embeddings, parameters.

    Scores as :func:`case` makes them (5 s chunks, 293 frames, 3 slots); each
    slot that holds a speaker gets that speaker's voice (a random unit vector)
    plus noise, the other slots a random vector (pyannote embeds every slot,
    active or not). Kinds: ``turns``; ``saturated`` (0/1 scores, as a powerset
    network's, so summed activations tie); ``zeros`` (silent slots and chunks,
    sometimes the whole file);
    ``nan`` (some embeddings NaN, inactive slots NaN); ``ties`` (no noise: exact
    duplicate embeddings, zero distances); ``single`` (a file shorter than a
    chunk: one chunk).
    """
    rng = np.random.default_rng([seed, 2])
    kind = DIARIZATION_KINDS[seed % len(DIARIZATION_KINDS)]
    step = float(STEPS[int(rng.integers(len(STEPS)))])
    if kind == "single":
        duration = float(np.round(rng.uniform(1.0, CHUNK_DURATION), 3))
    else:
        duration = float(np.round(rng.uniform(CHUNK_DURATION + 0.001, 40.0), 3))
    num_samples = round(duration * SAMPLE_RATE)
    duration = num_samples / SAMPLE_RATE
    n_chunks = num_chunks(num_samples, step)
    n_speakers = int(rng.integers(1, 6))
    speakers = [f"s{k}" for k in range(n_speakers)]
    turns = _turns(rng, duration, speakers)
    slots_of = -np.ones((n_chunks, NUM_SLOTS), dtype=np.int64)
    scores = _chunk_scores(rng, turns, speakers, n_chunks, step, duration, slots_of)
    if kind == "saturated":
        scores = np.where(scores > 0.5, 1.0, 0.0).astype(np.float32)
    elif kind == "zeros":
        silent = rng.random(scores.shape[::2]) < 0.3
        scores *= ~silent[:, np.newaxis, :]
        scores[rng.random(n_chunks) < 0.1] = 0.0
        if rng.random() < 0.25:
            scores[:] = 0.0  # nobody speaks

    voices = rng.normal(size=(n_speakers, EMBEDDING_DIMENSION))
    voices /= np.linalg.norm(voices, axis=1, keepdims=True)
    noise = 0.0 if kind == "ties" else float(rng.uniform(0.05, 0.8))
    embeddings = rng.normal(size=(n_chunks, NUM_SLOTS, EMBEDDING_DIMENSION))
    held = slots_of >= 0
    embeddings[held] = voices[slots_of[held]] + noise * embeddings[held]
    if kind == "ties":
        # a few voices exactly alike: equal distances everywhere
        embeddings = np.round(embeddings, 1)
    if kind == "nan":
        embeddings[rng.random((n_chunks, NUM_SLOTS)) < 0.15] = np.nan
        embeddings[~held] = np.nan
    return dict(
        seed=seed,
        kind=kind,
        scores=scores.astype(np.float32),
        embeddings=embeddings.astype(np.float32),
        step=step,
        num_samples=num_samples,
        params=_diarization_params(rng),
    )


def diarization_digest(inputs: dict) -> str:
    """Short hash of a diarization case's inputs (embeddings included)."""
    h = hashlib.sha256(digest(inputs).encode())
    h.update(np.ascontiguousarray(inputs["embeddings"], dtype="<f4").tobytes())
    return h.hexdigest()[:16]
