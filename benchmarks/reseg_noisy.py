"""Resegmentation on noisy generated conversations: skseg against pyannote.audio 3.4.0.

Conversations are cut from the sample (whole reference turns, shuffled, with
their speakers) and mixed with pink noise at a given SNR (5 dB by default), which
is enough for the model's third slot to fire; each baseline is a degraded copy of
the reference (ends moved by up to 0.3 s, overlaps given to whoever started
first, turns under 0.2 s dropped). For every conversation, at ``onset=offset=0.5``
(min durations 0) and at the defaults, it compares

* skseg's ``ResegmentationEstimator`` end to end with pyannote.audio 3.4.0's
  ``Resegmentation`` run in its own environment (``benchmarks/setup_peer34.sh``) on
  the same machine: identical turns, DER between the two;
* skseg's resegmentation algorithm fed pyannote's own chunk scores: identical
  turns (the algorithm alone, free of the float floor of the scores).

usage (repository root, skseg's environment)::

    .venv/bin/python benchmarks/reseg_noisy.py [--files 13] [--snr 5] [--duration 60]

The pyannote side runs as ``$SKSEG_PEER34_DIR/venv/bin/python benchmarks/reseg_noisy.py
--peer DIR``; audio and results stay in ``--work`` (default
``~/.cache/skseg/reseg_noisy``), never in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import numpy as np

SR = 16000
SETTINGS = {
    "onset0.5": dict(
        warm_up=0.05, onset=0.5, offset=0.5, min_duration_on=0.0, min_duration_off=0.0
    ),
    "defaults": dict(
        warm_up=0.05,
        onset=0.810,
        offset=0.481,
        min_duration_on=0.055,
        min_duration_off=0.098,
    ),
}


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-power 1/f noise (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(f), n)
    return noise / np.sqrt(np.mean(noise**2))


def conversation(seed: int, wav: np.ndarray, reference, duration: float, snr: float):
    """Shuffled whole turns of the sample, pink noise at ``snr`` dB; and its truth."""
    from pyannote.core import Annotation, Segment

    rng = np.random.default_rng(seed)
    turns = [
        (s.start, s.end, label)
        for s, _, label in reference.itertracks(yield_label=True)
    ]
    pieces, truth, t = [], Annotation(uri=f"conv{seed:02d}"), 0.0
    while t < duration:
        start, end, _ = turns[int(rng.integers(len(turns)))]
        # the piece keeps its neighbours' overlap and a little context
        a, b = max(0.0, start - 0.2), min(len(wav) / SR, end + 0.2)
        piece = wav[round(a * SR) : round(b * SR)]
        for s, _, label in reference.crop(Segment(a, b)).itertracks(yield_label=True):
            truth[Segment(t + s.start - a, t + s.end - a)] = label
        pieces.append(piece)
        pause = float(rng.uniform(0.0, 0.6))
        pieces.append(np.zeros(round(pause * SR), dtype=np.float32))
        t += len(piece) / SR + pause
    speech = np.concatenate(pieces)[: round(duration * SR)]
    truth = truth.crop(Segment(0, len(speech) / SR))
    power = np.mean(speech.astype(np.float64) ** 2)
    noise = pink_noise(rng, len(speech)) * np.sqrt(power / 10 ** (snr / 10))
    mixed = (speech + noise).astype(np.float32)
    return mixed / max(1.0, float(np.abs(mixed).max())), truth, rng


def degrade(truth, rng: np.random.Generator):
    """Baseline: ends moved by up to 0.3 s, overlap to the first, < 0.2 s dropped."""
    from pyannote.core import Annotation, Segment

    baseline, busy_until = Annotation(uri=truth.uri), 0.0
    for segment, _, label in sorted(
        truth.itertracks(yield_label=True), key=lambda x: x[0].start
    ):
        start = segment.start + float(rng.uniform(-0.3, 0.3))
        end = segment.end + float(rng.uniform(-0.3, 0.3))
        start = max(start, busy_until, 0.0)
        if end - start >= 0.2:
            baseline[Segment(start, end)] = label
            busy_until = max(busy_until, end)
    return baseline


def turns(annotation) -> list:
    return sorted(
        [s.start, s.end, str(label)]
        for s, _, label in annotation.itertracks(yield_label=True)
    )


# ---------------------------------------------------------------------------
# pyannote.audio 3.4.0 side (run in its own environment)
# ---------------------------------------------------------------------------


def run_peer(work: Path) -> None:
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import warnings

    warnings.filterwarnings("ignore")
    import soundfile as sf
    import torch
    from pyannote.audio.pipelines import Resegmentation
    from pyannote.database.util import load_rttm

    torch.set_num_threads(2)
    manifest = json.loads((work / "manifest.json").read_text())
    pipeline = Resegmentation(segmentation=manifest["checkpoint"])
    results = {}
    for uri in manifest["uris"]:
        wav, sr = sf.read(work / f"{uri}.wav", dtype="float32")
        baseline = load_rttm(work / f"{uri}.baseline.rttm")[uri]
        file = {"waveform": torch.from_numpy(wav)[None], "sample_rate": sr, "uri": uri}
        # pyannote's own cache: with training on, apply() keeps the chunk scores in
        # the file and the second setting reuses them
        pipeline.training = True
        for name, params in SETTINGS.items():
            seen = {}

            def hook(step, artefact, file=None, seen=seen, **kwargs):
                if step == "@resegmentation/original":
                    seen["labels"] = artefact.labels
                elif step == "segmentation" and artefact is not None:
                    seen["scores"] = np.array(artefact.data)  # before any change

            pipeline.instantiate(params)
            result = pipeline.apply(file, diarization=baseline, hook=hook)
            names = seen["labels"]
            results[f"{uri}/{name}"] = sorted(
                [
                    s.start,
                    s.end,
                    names[label] if label < len(names) else f"EXTRA_{label}",
                ]
                for s, _, label in result.itertracks(yield_label=True)
            )
        np.save(work / f"{uri}.pyannote_scores.npy", seen["scores"])
    (work / "pyannote340.json").write_text(json.dumps(results))


# ---------------------------------------------------------------------------
# skseg side
# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", type=Path, help="run pyannote's side on this folder")
    parser.add_argument("--files", type=int, default=13)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--snr", type=float, default=5.0)
    parser.add_argument(
        "--work", type=Path, default=Path.home() / ".cache" / "skseg" / "reseg_noisy"
    )
    parser.add_argument(
        "--peer-python",
        default=str(
            Path(
                os.environ.get("SKSEG_PEER34_DIR", Path.home() / ".cache/skseg/peer34")
            )
            / "venv"
            / "bin"
            / "python"
        ),
    )
    args = parser.parse_args()
    if args.peer is not None:
        run_peer(args.peer)
        return

    import soundfile as sf
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    from skseg import ResegmentationEstimator, fetch_sample
    from skseg.hub import resolve_checkpoint
    from skseg.inference import ChunkScores, Inference
    from skseg.io import write_rttm
    from skseg.pipelines._diarization import resegment

    sample = fetch_sample()
    wav, sr = sf.read(sample["audio"], dtype="float32")
    assert sr == SR
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    files, uris = {}, []
    for seed in range(args.files):
        audio, truth, rng = conversation(
            seed, wav, sample["annotation"], args.duration, args.snr
        )
        uri = truth.uri
        baseline = degrade(truth, rng)
        sf.write(work / f"{uri}.wav", audio, SR, subtype="FLOAT")
        write_rttm(baseline, work / f"{uri}.baseline.rttm")
        files[uri] = dict(
            waveform=audio[None],
            sample_rate=SR,
            uri=uri,
            annotation=truth,
            baseline=baseline,
        )
        uris.append(uri)
    checkpoint = str(resolve_checkpoint("pyannote/segmentation"))
    (work / "manifest.json").write_text(
        json.dumps(dict(uris=uris, checkpoint=checkpoint))
    )
    subprocess.run(
        [args.peer_python, str(Path(__file__).resolve()), "--peer", str(work)],
        check=True,
    )
    theirs = json.loads((work / "pyannote340.json").read_text())

    inference = Inference("pyannote/segmentation")
    rows, summary = (
        [],
        {name: dict(identical=0, from_scores=0, der=0.0) for name in SETTINGS},
    )
    for uri in uris:
        file = files[uri]
        ours_chunks = inference(file)
        peer_scores = np.load(work / f"{uri}.pyannote_scores.npy")
        peer_chunks = ChunkScores(
            peer_scores,
            ours_chunks.sliding_window,
            ours_chunks.frames,
            ours_chunks.num_samples,
            ours_chunks.sample_rate,
        )
        score_diff = float(np.abs(ours_chunks.data - peer_scores).max())
        uem = Timeline([Segment(0, ours_chunks.duration)])
        for name, params in SETTINGS.items():
            expected = theirs[f"{uri}/{name}"]
            estimator = ResegmentationEstimator(**params)
            ours = turns(estimator.predict([file])[0])
            from_scores = turns(resegment(peer_chunks, file["baseline"], **params)[0])
            der = DiarizationErrorRate()(
                as_annotation(expected, uri), as_annotation(ours, uri), uem=uem
            )
            extra = sorted({r[2] for r in expected if r[2].startswith("EXTRA_")})
            row = dict(
                uri=uri,
                setting=name,
                identical=ours == expected,
                identical_from_pyannote_scores=from_scores == expected,
                der_vs_pyannote=der,
                segments=(len(ours), len(expected)),
                extra=extra,
                max_score_diff=score_diff,
            )
            rows.append(row)
            summary[name]["identical"] += row["identical"]
            summary[name]["from_scores"] += row["identical_from_pyannote_scores"]
            summary[name]["der"] = max(summary[name]["der"], der)
            print(json.dumps(row))
    for name, s in summary.items():
        print(
            f"{name}: {s['identical']}/{len(uris)} identical end to end, "
            f"{s['from_scores']}/{len(uris)} identical from pyannote's chunk scores, "
            f"max DER vs pyannote {s['der']:.6f}"
        )
    (work / "summary.json").write_text(json.dumps(dict(rows=rows, summary=summary)))


def as_annotation(rows: list, uri: str):
    from pyannote.core import Annotation, Segment

    out = Annotation(uri=uri)
    for k, (start, end, label) in enumerate(rows):
        out[Segment(start, end), k] = label
    return out


if __name__ == "__main__":
    main()
