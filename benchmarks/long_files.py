"""Peak memory and wall time on long files: 30 minutes and 2 hours of audio.

Writes synthetic long files to a temporary folder, block by block (the parent
never holds one whole): pyannote's 30 s sample tiled, with independent white
noise at -60 dBFS added to every tile so that no two tiles are identical, in two
variants:

* ``16k-mono``: 16 kHz mono 16-bit WAV (the model's rate: no resampling);
* ``44k-stereo``: 44.1 kHz stereo 16-bit WAV (downmix + streamed resampling),
  the sample resampled to 44.1 kHz once, its second channel with other noise
  and a lower gain.

Each measurement runs in a FRESH Python process (so peaks do not mix), which
loads the model, runs one short warm-up file, then either
``VADEstimator().predict([path])`` (default ``cache=True``: the chunk scores and
the aggregated speech scores stay in the process-wide cache) or raw
``Inference(model)(path)``, and reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), the wall time of that call and
the bytes of the score arrays it holds at the end (chunk scores
``(chunks, 293, 3)`` float32, plus for VAD the aggregated ``(frames, 1)`` speech
scores), measured on the arrays themselves.

Printed per variant and mode: peak RSS, score bytes, ``peak - scores`` ("beyond
the score arrays") and its growth from the shortest to the longest duration,
with the checks of issue 7: peak RSS of the longest file < 1 GB and growth
beyond the score arrays < 20 %. The exit status is 1 if a check fails.

usage: python benchmarks/long_files.py [--durations 1800 7200]
       [--variants 16k-mono 44k-stereo] [--modes vad inference] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

VARIANTS = {"16k-mono": (16000, 1), "44k-stereo": (44100, 2)}
MODES = ("vad", "inference")
GB = 1e9
MB = 1e6
NOISE = 1e-3  # -60 dBFS white noise per tile: files are not exactly periodic


# -- files ----------------------------------------------------------------------
def write_long_file(path: Path, seconds: float, rate: int, channels: int) -> None:
    """Tile the sample (resampled to ``rate``) up to ``seconds``, tile by tile."""
    from scipy.signal import resample_poly

    from skseg import fetch_sample

    wav, sr = sf.read(fetch_sample()["audio"], dtype="float32")
    if rate != sr:
        g = gcd(rate, sr)
        wav = resample_poly(wav, rate // g, sr // g).astype(np.float32)
    gains = [1.0, 0.8][:channels]
    rng = np.random.default_rng(0)
    total = int(round(seconds * rate))
    with sf.SoundFile(
        path, "w", samplerate=rate, channels=channels, subtype="PCM_16"
    ) as out:
        written = 0
        while written < total:
            n = min(len(wav), total - written)
            tile = np.stack(
                [
                    g * wav[:n] + NOISE * rng.standard_normal(n).astype(np.float32)
                    for g in gains
                ],
                axis=1,
            )
            out.write(np.clip(tile, -1.0, 1.0))
            written += n


# -- one measurement, in a fresh process -------------------------------------------
def child(mode: str, path: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from skseg import Inference, VADEstimator, fetch_sample
    from skseg.cache import get_cache
    from skseg.model import load_model

    model = load_model("pyannote/segmentation")  # the one every estimator shares
    warm = fetch_sample()["audio"]  # load, allocate, first-call costs out of the way
    if mode == "vad":
        VADEstimator(cache=False).predict([warm])
    else:
        Inference(model)(warm)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    t0 = time.perf_counter()
    if mode == "vad":
        estimator = VADEstimator()
        estimator.predict([path])
    else:
        chunks = Inference(model)(path)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    if mode == "vad":
        # what the estimator keeps: chunk scores and speech scores, in its cache
        key = estimator.score_source().file(path).key
        chunks = get_cache(True).get(key)
        speech = estimator.decision_function([path])[0]  # a cache hit
        score_bytes = chunks.data.nbytes + speech.data.nbytes
    else:
        score_bytes = chunks.data.nbytes
    print(
        json.dumps(
            {
                "peak_rss": peak,
                "rss_after_warm_up": before,
                "score_bytes": int(score_bytes),
                "chunks_shape": list(chunks.data.shape),
                "wall_s": wall,
                "audio_s": chunks.duration,
            }
        )
    )


def measure(mode: str, path: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[1800, 7200])
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, threads = args.child
        child(mode, path, int(threads))
        return 0

    durations = sorted(args.durations)
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            rate, channels = VARIANTS[variant]
            paths = {}
            for seconds in durations:
                paths[seconds] = Path(tmp) / f"{variant}-{seconds:g}s.wav"
                t0 = time.perf_counter()
                write_long_file(paths[seconds], seconds, rate, channels)
                print(
                    f"wrote {paths[seconds].name} "
                    f"({paths[seconds].stat().st_size / MB:.0f} MB) "
                    f"in {time.perf_counter() - t0:.1f} s",
                    file=sys.stderr,
                )
            for mode in args.modes:
                results = {}
                for seconds in durations:
                    r = measure(mode, paths[seconds], args.threads)
                    r["beyond"] = r["peak_rss"] - r["score_bytes"]
                    results[seconds] = r
                    row = {"variant": variant, "mode": mode, "seconds": seconds}
                    row |= {
                        "peak_rss_MB": round(r["peak_rss"] / MB, 1),
                        "rss_after_warm_up_MB": round(r["rss_after_warm_up"] / MB, 1),
                        "score_arrays_MB": round(r["score_bytes"] / MB, 1),
                        "beyond_scores_MB": round(r["beyond"] / MB, 1),
                        "wall_s": round(r["wall_s"], 1),
                        "real_time_factor": round(r["wall_s"] / r["audio_s"], 4),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                short, long = results[durations[0]], results[durations[-1]]
                growth = 100.0 * (long["beyond"] / short["beyond"] - 1.0)
                under_1gb = long["peak_rss"] < GB
                flat = growth < 20.0
                ok &= under_1gb and flat
                print(
                    json.dumps(
                        {
                            "variant": variant,
                            "mode": mode,
                            "growth_beyond_scores_pct": round(growth, 2),
                            f"peak_rss_{durations[-1]:g}s_under_1GB": under_1gb,
                            "growth_under_20pct": flat,
                        }
                    ),
                    flush=True,
                )
            for path in paths.values():
                path.unlink()
    print("all checks pass" if ok else "A CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
