"""The diarization benchmark's data: generated conversations and AMI excerpts.

Usage, from the repository root::

    .venv/bin/python benchmarks/diarization_data.py DATA [--overwrite]

Writes, with :mod:`skseg.synthetic` (espeak-ng and Flite voices; nothing of it is
committed, the same seeds give the same files on the same machine):

* ``DATA/synthetic/test/spk{2,3,4}/``: 8 conversations of 75 s per speaker count
  (10 min each, 30 min in all) between speakers of the *test* voices of
  ``split_personas(seed=0, personas_per_voice=1)``;
* ``DATA/synthetic/dev/spk{2,3,4}/``: 4 conversations of 60 s per speaker count,
  between speakers of the *validation* voices, other seeds: what the tuned rows
  are tuned on. No voice of the test files is heard in them.

One persona per voice, so two speakers of a conversation never share a voice
(two personas of one espeak-ng variant differ only by pitch and speed). Noise,
SNR, band and level changes are drawn per file as :func:`generate_conversation`
does by default (clean or 20, 10, 5 dB; white, pink, brown or babble noise;
full or telephone band); the overlap target is its default 10 % of speech.

The real recordings are :func:`skseg.datasets.fetch_ami_excerpts` (fourteen 30 s
AMI meeting excerpts, CC BY 4.0), cached under ``$SKSEG_HOME`` and read in place.
``DATA/manifest.json`` records the draws of every generated file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from skseg.synthetic import split_personas, write_conversations  # noqa: E402

#: speaker counts of the generated sets
COUNTS = (2, 3, 4)
#: (split of split_personas, files per count, seconds per file, base seed)
SETS = {
    "test": ("test", 8, 75.0, 26_000),
    "dev": ("val", 4, 60.0, 26_500),
}


def generate(data: Path, overwrite: bool = False) -> dict:
    """Write the generated sets under ``data/synthetic``; return the manifest."""
    root = data / "synthetic"
    if root.exists():
        if not overwrite:
            raise SystemExit(f"{root}: exists; pass --overwrite to replace it")
        shutil.rmtree(root)
    personas = split_personas(seed=0, personas_per_voice=1)
    manifest: dict = {"counts": list(COUNTS), "sets": {}}
    for name, (split, n_files, duration, seed) in SETS.items():
        pool = personas[split]
        entry = {
            "voices": sorted(p.voice_id for p in pool),
            "duration": duration,
            "files": {},
        }
        for count in COUNTS:
            folder = root / name / f"spk{count}"
            meta = write_conversations(
                folder,
                pool,
                n_files,
                duration,
                seed=seed + count,
                prefix=f"{name}{count}",
                n_speakers=count,
            )
            entry["files"][f"spk{count}"] = meta
            got = sorted({len(m["speakers"]) for m in meta})
            print(f"{folder}: {n_files} files of {duration:g} s, speakers {got}")
        manifest["sets"][name] = entry
    test = set(manifest["sets"]["test"]["voices"])
    dev = set(manifest["sets"]["dev"]["voices"])
    assert test.isdisjoint(dev), "test and dev voices overlap"
    manifest["personas"] = {
        name: [asdict(p) | {"label": p.label} for p in personas[split]]
        for name, (split, *_rest) in SETS.items()
    }
    (data / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    generate(args.data, args.overwrite)


if __name__ == "__main__":
    main()
