"""What a GridSearchCV over the VAD hyper-parameters costs, relative to one predict.

The network's scores do not depend on onset/offset/min durations, so skseg
computes them once per file (score cache) and every candidate only re-binarizes.
This script times, in one process:

1. one plain ``VADEstimator(cache=False).predict(files)`` (network + decisions);
2. a cold ``GridSearchCV`` (empty cache) over the default grid
   (:func:`skseg.tuning.default_grid`, what ``skseg tune`` searches) with the
   speech detection error rate scorer, n_jobs=1, including the refit;
3. the same with n_jobs=2 and a shared on-disk cache directory, cold;
4. the same after filling that directory in the parent (the documented pattern);

and prints each ratio to 1. Files: pyannote's 30 s sample tiled 5x
(2.5 min), 4 files made distinct by a per-file gain (the network normalises the
waveform, so scores stay realistic while the cache sees 4 different files).

usage: python benchmarks/tuning_cost.py [--files 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from pyannote.core import Annotation, Segment, Timeline
from sklearn.model_selection import GridSearchCV, KFold

from skseg import VADEstimator, fetch_sample
from skseg.cache import get_cache
from skseg.metrics import get_scorer
from skseg.tuning import default_grid

GRID = default_grid(VADEstimator())


def make_files(directory: Path, n_files: int, repeat: int):
    sample = fetch_sample()
    wav, sr = sf.read(sample["audio"], dtype="float32")
    files = []
    for k in range(n_files):
        path = directory / f"file{k}.wav"
        sf.write(path, np.tile(wav, repeat) * (1.0 - 0.02 * k), sr, subtype="FLOAT")
        reference = Annotation(uri=path.stem)
        for r in range(repeat):
            for segment, track, label in sample["annotation"].itertracks(
                yield_label=True
            ):
                reference[
                    Segment(segment.start + 30 * r, segment.end + 30 * r), (r, track)
                ] = label
        files.append(
            {
                "audio": str(path),
                "uri": path.stem,
                "annotation": reference,
                "annotated": Timeline([Segment(0, 30.0 * repeat)], uri=path.stem),
            }
        )
    return files


def make_search(cache, n_jobs: int) -> GridSearchCV:
    return GridSearchCV(
        VADEstimator(cache=cache),
        GRID,
        scoring=get_scorer("neg_speech_detection_error_rate"),
        cv=KFold(2),
        n_jobs=n_jobs,
        error_score="raise",
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_candidates = int(np.prod([len(v) for v in GRID.values()]))
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.files, args.repeat)
        y = [f["annotation"] for f in files]
        VADEstimator(cache=False).predict([files[0]])  # warm-up: load, allocate

        t_predict, _ = timed(lambda: VADEstimator(cache=False).predict(files))

        get_cache(True).clear()
        search = make_search(True, n_jobs=1)
        t_search1, _ = timed(lambda: search.fit(files, y))

        search2 = make_search(str(Path(tmp) / "scores"), n_jobs=2)
        t_search2, _ = timed(lambda: search2.fit(files, y))

        # the remedy for workers racing on cold files: fill the shared cache in the
        # parent (network once per file), then let the workers only read it
        warm_dir = str(Path(tmp) / "warm-scores")
        search3 = make_search(warm_dir, n_jobs=2)

        def warm_then_search():
            VADEstimator(cache=warm_dir).decision_function(files)
            return search3.fit(files, y)

        t_search3, _ = timed(warm_then_search)
        best1, best2, best3 = (s.best_params_ for s in (search, search2, search3))

    audio_s = 30.0 * args.repeat * args.files
    result = {
        "audio_seconds": audio_s,
        "files": args.files,
        "candidates": n_candidates,
        "cv_folds": 2,
        "fits": n_candidates * 2 + 1,
        "torch_threads": args.threads,
        "predict_s": round(t_predict, 3),
        "gridsearch_n_jobs1_s": round(t_search1, 3),
        "gridsearch_n_jobs2_s": round(t_search2, 3),
        "ratio_n_jobs1": round(t_search1 / t_predict, 3),
        "ratio_n_jobs2": round(t_search2 / t_predict, 3),
        "gridsearch_n_jobs2_warmed_s": round(t_search3, 3),
        "ratio_n_jobs2_warmed": round(t_search3 / t_predict, 3),
        "same_best_params": best1 == best2 == best3,
        "best_params": best1,
        "best_score": round(float(search.best_score_), 5),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
