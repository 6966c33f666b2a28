"""DER and speaker-count error of DiarizationEstimator against its clustering threshold.

Usage, from the repository root::

    .venv/bin/python benchmarks/diarization_sweep.py [--synthetic DATA]

On the 10 ``train`` excerpts of :func:`skseg.datasets.fetch_ami_excerpts` (real
meetings; not the files ``benchmarks/diarization.py`` tests on) and, with
``--synthetic DATA``, the generated dev conversations of
``benchmarks/diarization_data.py``, prints the DER (collar 0, overlap scored, UEM
respected) and the mean absolute and signed speaker-count errors for each
``clustering_threshold`` at ``min_cluster_size`` 12 (the default) and 2, the other
parameters at their defaults. Both networks run once per file (the score cache);
``docs/diarization.md`` quotes the AMI lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402

from skseg import DiarizationEstimator, load_folder  # noqa: E402
from skseg.datasets import fetch_ami_excerpts  # noqa: E402

THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7045654963945799, 0.75, 0.8, 0.85, 0.9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synthetic", type=Path, help="DATA of diarization_data.py")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {"ami-train": fetch_ami_excerpts()["train"]}
    if args.synthetic:
        sets["synthetic-dev"] = [
            file
            for count in (2, 3, 4)
            for file in load_folder(
                args.synthetic / "synthetic" / "dev" / f"spk{count}"
            )[0]
        ]
    for name, files in sets.items():
        for min_cluster_size in (12, 2):
            for threshold in THRESHOLDS:
                estimator = DiarizationEstimator(
                    clustering_threshold=threshold, min_cluster_size=min_cluster_size
                )
                metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
                errors = []
                for file, hypothesis in zip(
                    files, estimator.predict(files), strict=True
                ):
                    metric(file["annotation"], hypothesis, uem=file["annotated"])
                    reference = file["annotation"].labels()
                    errors.append(len(hypothesis.labels()) - len(reference))
                print(
                    f"{name} min_cluster_size={min_cluster_size:2d} "
                    f"threshold={threshold:.4f} DER={100 * abs(metric):5.1f} % "
                    f"count error={np.mean(np.abs(errors)):.2f} "
                    f"bias={np.mean(errors):+.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
