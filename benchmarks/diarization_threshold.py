"""How DiarizationEstimator's default ``clustering_threshold`` was chosen.

pyannote 3.1's 0.7045 was tuned for its WeSpeaker embeddings; CAM++ embeddings
(skseg's) spread differently. This script generates conversations with
:mod:`skseg.synthetic` from the *validation* voices of ``split_personas(seed=0)``
(the benchmark draws its files from the test voices), 2 to 4 speakers, 60 s,
seeds 1000 to 1011, and prints the DER (collar 0, overlap scored) and the
speaker-count error of every threshold of a grid, both networks run once per
file (the score cache keeps the segmentation scores and the embeddings)::

    .venv/bin/python benchmarks/diarization_threshold.py [--files 12]

Its output on 2026-12-06 (2-core CPU shared with other jobs: the network time
is not a speed measurement), from which 0.6 became the default::

    threshold  DER(%)  mean |speakers - true|
         0.30   42.07  1.08
         0.40   25.82  0.75
         0.50   18.14  0.33
         0.55   15.70  0.25
         0.60   15.25  0.33
         0.65   16.85  0.33
         0.70   15.92  0.17
         0.75   17.45  0.25
         0.80   23.71  0.50
         0.90   38.83  0.83
         1.00   49.18  1.00
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pyannote.metrics.diarization import DiarizationErrorRate

from skseg import DiarizationEstimator
from skseg.synthetic import generate_conversation, split_personas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    personas = split_personas(seed=0)["val"]
    files = [
        generate_conversation(
            personas, duration=args.duration, seed=1000 + i, uri=f"val{i:02d}"
        )
        for i in range(args.files)
    ]
    thresholds = np.round(np.arange(0.30, 1.201, 0.05), 2)
    estimator = DiarizationEstimator()
    start = time.perf_counter()
    estimator.predict(files)  # fills the cache: networks once per file
    print(f"networks: {time.perf_counter() - start:.1f} s for {len(files)} files")
    print("threshold  DER(%)  mean |speakers - true|")
    for threshold in thresholds:
        metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
        estimator.set_params(clustering_threshold=float(threshold))
        errors = []
        for file, hypothesis in zip(files, estimator.predict(files), strict=True):
            metric(file["annotation"], hypothesis, uem=file["annotated"])
            errors.append(
                abs(len(hypothesis.labels()) - len(file["annotation"].labels()))
            )
        print(f"{threshold:9.2f}  {100 * abs(metric):6.2f}  {np.mean(errors):.2f}")


if __name__ == "__main__":
    main()
