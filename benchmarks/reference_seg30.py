"""Reference outputs of pyannote.audio on pyannote/segmentation-3.0, for skseg's tests.

Run in a peer environment (never in skseg's: pyannote.audio is no dependency of
skseg), with the checkpoint skseg resolves for "pyannote/segmentation-3.0":

    bash benchmarks/setup_peer.sh                      # pyannote.audio 4.0.7
    ~/.cache/skseg/peer/venv/bin/python benchmarks/reference_seg30.py \\
        ~/.cache/skseg/pyannote/segmentation-3.0/pytorch_model.bin tests/data/seg30 \\
        sample=~/.cache/skseg/data/pyannote-sample/sample.wav \\
        conv0=tests/data/seg30/conv0.flac conv1=tests/data/seg30/conv1.flac

For every ``uri=path`` it writes ``<out>/<uri>.npz`` (``log_probs``: the raw float32
output of ``Inference(model, skip_conversion=True)``, default step = 10 % of the 10
s chunk, and ``step``/``duration``) and adds to ``<out>/pyannote-<version>.json``
the regions of ``VoiceActivityDetection(segmentation=model)`` instantiated with each
``(min_duration_on, min_duration_off)`` of :data:`DURATIONS`. Under pyannote.audio
3.4 (which still has them) it also writes the regions of
``OverlappedSpeechDetection`` for the same durations and of ``Resegmentation``
(onset = offset = 0.5, warm_up 0.05, the durations) of each file's reference RTTM
next to its audio, when there is one. pyannote is given each waveform in memory, as
read by soundfile in float32 (the samples skseg reads).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

#: (min_duration_on, min_duration_off) pairs the pipelines are instantiated with
DURATIONS = [(0.0, 0.0), (0.1, 0.1), (0.136, 0.067), (0.3, 0.5)]


def _regions(annotation) -> list[list[float]]:
    return [[s.start, s.end] for s in annotation.get_timeline().support()]


def _turns(annotation) -> list[list]:
    return [
        [s.start, s.end, str(label)]
        for s, _, label in annotation.itertracks(yield_label=True)
    ]


def main(argv: list[str]) -> None:
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    # pyannote.audio 3.4 loads checkpoints with torch.load(weights_only=False)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    warnings.filterwarnings("ignore")
    import numpy as np
    import pyannote.audio
    import soundfile as sf
    import torch
    from pyannote.audio import Inference, Model
    from pyannote.audio.pipelines import VoiceActivityDetection

    torch.set_num_threads(1)
    checkpoint, out = argv[0], Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    version = pyannote.audio.__version__
    model = Model.from_pretrained(checkpoint)
    model.eval()
    inference = Inference(model, skip_conversion=True)
    results: dict = {"pyannote.audio": version, "durations": DURATIONS, "files": {}}
    for item in argv[2:]:
        uri, path = item.split("=", 1)
        wav, sr = sf.read(os.path.expanduser(path), dtype="float32")
        assert sr == 16000 and wav.ndim == 1, path
        file = {"waveform": torch.from_numpy(wav)[None], "sample_rate": sr, "uri": uri}
        raw = inference(file)
        np.savez_compressed(
            out / f"{uri}.npz",
            log_probs=np.asarray(raw.data, dtype=np.float32),
            step=raw.sliding_window.step,
            duration=raw.sliding_window.duration,
        )
        entry: dict = {"vad": {}}
        for a, b in DURATIONS:
            vad = VoiceActivityDetection(segmentation=model)
            vad.instantiate({"min_duration_on": a, "min_duration_off": b})
            entry["vad"][f"{a},{b}"] = _regions(vad(dict(file)))
        if version.startswith("3."):
            from pyannote.audio.pipelines import (
                OverlappedSpeechDetection,
                Resegmentation,
            )
            from pyannote.database.util import load_rttm

            entry["osd"] = {}
            for a, b in DURATIONS:
                osd = OverlappedSpeechDetection(segmentation=model)
                osd.instantiate({"min_duration_on": a, "min_duration_off": b})
                entry["osd"][f"{a},{b}"] = _regions(osd(dict(file)))
            rttm = Path(os.path.expanduser(path)).with_suffix(".rttm")
            if rttm.exists():
                baseline = next(iter(load_rttm(rttm).values()))
                entry["resegmentation"] = {}
                for a, b in DURATIONS:
                    reseg = Resegmentation(segmentation=model)
                    reseg.instantiate(
                        {
                            "warm_up": 0.05,
                            "onset": 0.5,
                            "offset": 0.5,
                            "min_duration_on": a,
                            "min_duration_off": b,
                        }
                    )
                    turns = reseg(dict(file), diarization=baseline)
                    entry["resegmentation"][f"{a},{b}"] = _turns(turns)
        results["files"][uri] = entry
        print(uri, raw.data.shape, {k: len(v) for k, v in entry.items()}, flush=True)
    with open(out / f"pyannote-{version}.json", "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
