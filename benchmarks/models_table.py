"""pyannote/segmentation (2021) vs pyannote/segmentation-3.0, with pyannote's
settings and with thresholds tuned by GridSearchCV: speech DetER and overlap F.

Data: a generated domain (``skseg.synthetic.make_corpus``, finetune branch: TTS
conversations with exact references; a ``val`` split to tune on, a ``test`` split
to evaluate on) and pyannote's 30 s sample. Thresholds are tuned on ``val`` only
(``GridSearchCV`` over ``onset`` x ``offset``, one fold: fit ignores the data,
the candidates are scored on ``val``); the minimum durations stay at each
setting's values. The network runs once per file and model (score cache).

Settings ("pyannote"): the 2021 model with pyannote's defaults (VAD 0.767 / 0.377
/ 0.136 / 0.067, OSD 0.430 / 0.320 / 0.091 / 0.144); the 3.0 model with
pyannote.audio's rule (the hard powerset decision at 0.5) and its intended
defaults, no minimum durations (``default_parameters()``, 3.4.0 and 4.0.7).

usage:
  PYTHONPATH=<worktree with skseg.synthetic> python -c "from skseg.synthetic \\
      import make_corpus; make_corpus('/tmp/domain', n_train=0, n_val=6, \\
      n_test=6, duration=30.0, seed=1515)"
  python benchmarks/models_table.py /tmp/domain [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV

from skseg import OSDEstimator, VADEstimator, fetch_sample
from skseg.io import load_folder
from skseg.metrics import get_scorer

MODELS = {"2021": "pyannote/segmentation", "3.0": "pyannote/segmentation-3.0"}
# 0.1 to 0.9 by 0.1, and the high end finer: the soft speech probability of
# the powerset model is confident (most frames near 0 or 1)
THRESHOLDS = [round(x, 2) for x in np.arange(0.1, 0.95, 0.1)] + [0.95, 0.98]


def pyannote_settings(cls, model: str) -> dict:
    """The estimator as pyannote runs this model (defaults / default_parameters)."""
    if model == "pyannote/segmentation":
        return {}  # skseg's defaults are pyannote's for this model
    return {"min_duration_on": 0.0, "min_duration_off": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("domain", help="make_corpus folder (val/ and test/)")
    parser.add_argument("--json")
    args = parser.parse_args()
    X_val, y_val = load_folder(Path(args.domain) / "val")
    X_test, y_test = load_folder(Path(args.domain) / "test")
    sample = fetch_sample()
    rows = []
    for cls, metric in (
        (VADEstimator, "neg_speech_detection_error_rate"),
        (OSDEstimator, "overlap_fmeasure"),
    ):
        scorer = get_scorer(metric)
        for name, model in MODELS.items():
            base = cls(model, **pyannote_settings(cls, model))
            search = GridSearchCV(
                base,
                {"onset": THRESHOLDS, "offset": THRESHOLDS},
                scoring=scorer,
                cv=[(np.arange(len(X_val)), np.arange(len(X_val)))],
                refit=True,
            ).fit(X_val, y_val)
            for setting, estimator in (
                ("pyannote", base),
                ("tuned", search.best_estimator_),
            ):
                row = {
                    "pipeline": cls.__name__,
                    "metric": metric,
                    "model": name,
                    "setting": setting,
                    "onset": estimator.resolve_thresholds()[0],
                    "offset": estimator.resolve_thresholds()[1],
                    "rule": estimator.resolve_thresholds()[2],
                    "domain_test": abs(scorer(estimator, X_test, y_test)),
                    "sample": abs(scorer(estimator, [sample], [sample["annotation"]])),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| pipeline | model | setting | onset / offset | generated test | sample |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        unit = "DetER %" if r["pipeline"] == "VADEstimator" else "F %"
        thresholds = (
            "hard rule (0.5)"
            if r["rule"] == "powerset-hard"
            else f"{r['onset']:g} / {r['offset']:g}"
        )
        print(
            f"| {r['pipeline']} ({unit}) | {r['model']} | {r['setting']} | "
            f"{thresholds} | {100 * r['domain_test']:.2f} | {100 * r['sample']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
