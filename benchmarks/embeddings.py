"""Which speaker embedding: CAM++ (senko's weights) or GE2E (resemblyzer), measured.

Both install from the package index under Apache-2.0. This script embeds short
single-speaker utterances and measures how well the embeddings tell speakers
apart, and how fast they are on one CPU thread:

* generated voices: ``--speakers`` personas of
  :func:`skseg.synthetic.split_personas` (espeak-ng and Flite voices, each
  persona its own language, pitch and speed; Flite is asked for explicitly and
  needs its command: ``apt-get install flite``), ``--utterances`` sentences each;
* real speech: the two speakers of pyannote's ``sample.wav``, cut into 1.5 s crops
  of the regions where ``sample.rttm`` has one speaker only.

Per model and set: the equal error rate (EER) of cosine scores over all pairs of
utterances (same speaker or not), the adjusted Rand index (ARI) of agglomerative
clustering (cosine, average linkage, true number of speakers), and the real-time
factor (seconds of compute per second of audio, one thread, batch of one).

CAM++ runs in skseg (:mod:`skseg.embedding`), with and without senko's final
ReLU. GE2E runs in a side environment that has resemblyzer (its
``preprocess_wav`` then ``VoiceEncoder.embed_utterance``, as its README uses
them), given by ``--ge2e-python``; see ``benchmarks/reference_embedding.py`` for
such an environment, plus ``pip install --no-deps resemblyzer==0.1.4 &&
pip install librosa webrtcvad-wheels``::

    .venv/bin/python benchmarks/embeddings.py --ge2e-python /tmp/senko-venv/bin/python

Without ``--ge2e-python`` only CAM++ is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call me back when you have finished reading the report.",
    "We should meet again next week to talk about the budget.",
    "I never thought the weather would change so quickly today.",
    "Could you send the file before the end of the afternoon?",
    "The train was late, so we walked the rest of the way home.",
    "Nobody knew where the old map had been hidden for years.",
    "Let us try another approach and see whether it works better.",
]


def _eer(scores: np.ndarray, same: np.ndarray) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(same, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def _quality(embeddings: np.ndarray, labels: list[str]) -> dict:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cos = e @ e.T
    y = np.asarray(labels)
    iu = np.triu_indices(len(y), k=1)
    same = (y[:, None] == y[None, :])[iu]
    clusters = AgglomerativeClustering(
        n_clusters=len(set(labels)), metric="cosine", linkage="average"
    ).fit_predict(e)
    return {
        "eer": _eer(cos[iu], same),
        "ari": float(adjusted_rand_score(y, clusters)),
    }


def _generated(num_speakers: int, utterances: int, seed: int):
    from skseg.synthetic import split_personas

    # the voices the published numbers were measured with (Flite is not a default)
    splits = split_personas(seed, engines=("espeak-ng", "flite"), personas_per_voice=1)
    personas = [p for name in sorted(splits) for p in splits[name]]
    rng = np.random.default_rng(seed)
    chosen = [personas[i] for i in rng.permutation(len(personas))[:num_speakers]]
    waves, labels = [], []
    for persona in chosen:
        for k in range(utterances):
            wav = persona.synthesize(SENTENCES[(k + len(waves)) % len(SENTENCES)])
            waves.append(wav.astype(np.float32))
            labels.append(persona.label)
    return waves, labels


def _real():
    import soundfile as sf
    from pyannote.core import Segment, Timeline

    from skseg import fetch_sample

    sample = fetch_sample()
    wav, sr = sf.read(sample["audio"], dtype="float32")
    annotation = sample["annotation"]
    waves, labels = [], []
    for label in annotation.labels():
        mine = annotation.label_timeline(label).support()
        others = Timeline(
            [s for s, _, lab in annotation.itertracks(yield_label=True) if lab != label]
        ).support()
        alone = mine.extrude(others)
        for segment in alone:
            start = segment.start
            while start + 1.5 <= segment.end:
                crop = Segment(start, start + 1.5)
                waves.append(wav[int(crop.start * sr) : int(crop.end * sr)])
                labels.append(label)
                start += 1.5
    return waves, labels


def _campplus(waves: list[np.ndarray], relu: bool) -> tuple[np.ndarray, float]:
    import torch

    from skseg.embedding import load_embedding_model

    model = load_embedding_model(relu=relu)
    out = []
    with torch.inference_mode():
        model(torch.zeros(1, 1, 16000))  # warm-up
        began = time.perf_counter()
        for wav in waves:
            out.append(model(torch.from_numpy(wav)[None, None])[0].numpy())
        seconds = time.perf_counter() - began
    return np.stack(out), seconds


def _ge2e_worker(source: str, target: str) -> None:
    # runs in the side environment: resemblyzer is no dependency of skseg
    import torch
    from resemblyzer import VoiceEncoder, preprocess_wav

    torch.set_num_threads(1)
    data = np.load(source)
    bounds = np.cumsum([0, *data["lengths"]])
    waves = [data["audio"][a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    encoder = VoiceEncoder("cpu", verbose=False)
    encoder.embed_utterance(preprocess_wav(np.zeros(16000, np.float32) + 0.01))
    began = time.perf_counter()
    out = [encoder.embed_utterance(preprocess_wav(w, source_sr=16000)) for w in waves]
    seconds = time.perf_counter() - began
    np.savez(target, embeddings=np.stack(out), seconds=seconds)


def _ge2e(python: str, waves: list[np.ndarray]) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory(prefix="skseg-ge2e-") as tmp:
        source, target = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            source,
            audio=np.concatenate(waves),
            lengths=np.array([len(w) for w in waves]),
        )
        subprocess.run(
            [python, __file__, "--ge2e-worker", str(source), str(target)],
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        result = np.load(target)
        return result["embeddings"], float(result["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers", type=int, default=16)
    parser.add_argument("--utterances", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ge2e-python", help="a Python that imports resemblyzer")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--ge2e-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ge2e_worker:
        _ge2e_worker(*args.ge2e_worker)
        return

    import torch

    torch.set_num_threads(1)
    sets = {
        "generated": _generated(args.speakers, args.utterances, args.seed),
        "sample.wav": _real(),
    }
    models = {
        "CAM++ (skseg)": lambda w: _campplus(w, relu=False),
        "CAM++ + ReLU (senko)": lambda w: _campplus(w, relu=True),
    }
    if args.ge2e_python:
        models["GE2E (resemblyzer)"] = lambda w: _ge2e(args.ge2e_python, w)
    rows = []
    for set_name, (waves, labels) in sets.items():
        audio = sum(len(w) for w in waves) / 16000
        for model_name, run in models.items():
            embeddings, seconds = run(waves)
            row = {
                "set": set_name,
                "model": model_name,
                "speakers": len(set(labels)),
                "utterances": len(waves),
                "audio_s": round(audio, 1),
                **_quality(embeddings, labels),
                "rtf": seconds / audio,
            }
            rows.append(row)
            print(
                f"{set_name:10s} {model_name:22s} {row['speakers']:2d} spk "
                f"{row['utterances']:3d} utt {audio:6.1f} s  "
                f"EER {100 * row['eer']:5.1f} %  ARI {row['ari']:.3f}  "
                f"RTF {row['rtf']:.4f}",
                flush=True,
            )
    print()
    print("| set | model | speakers | utterances | EER | ARI | RTF (1 thread) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['model']} | {r['speakers']} | {r['utterances']} | "
            f"{100 * r['eer']:.1f} % | {r['ari']:.3f} | {r['rtf']:.4f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
