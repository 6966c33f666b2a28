"""senko 0.2.2 on the CPU: the second peer of ``benchmarks/diarization.py``.

Runs INSIDE senko's own environment (``bash benchmarks/setup_peer_senko.sh``,
default ``~/.cache/skseg/peer-senko``), never in skseg's::

    ~/.cache/skseg/peer-senko/venv/bin/python benchmarks/peer_senko.py \\
        FILES.json OUT/ --threads 2

``FILES.json`` is a list of ``{"uri", "audio"}`` (16 kHz mono 16-bit WAV paths, the
only input ``senko.Diarizer.diarize`` takes). senko is run as its README runs
it, on the CPU: ``Diarizer(device="cpu", vad="auto", clustering="auto")``, which on
a CPU means silero-vad for speech, CAM++ embeddings of 1.5 s sub-segments (senko's
C++ Kaldi filterbanks) and spectral clustering for files under 20 min. senko
takes no number of speakers, so it has no oracle row. Its thread count is pinned
to ``--threads`` (senko sets torch's to every logical core).

The first 10 s of the first file are run once untimed (warm-up), then every
file is timed: wall
time and the process's CPU time of ``diarize(path)``. Writes ``OUT/senko.rttm``
(``merged_segments``; a file where senko finds no speech gets no line) and
``OUT/timings.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    files = json.loads(args.files.read_text())
    args.out.mkdir(parents=True, exist_ok=True)

    import senko

    senko.Diarizer._set_torch_num_threads = lambda self, num=None: (
        torch.set_num_threads(args.threads)
    )
    diarizer = senko.Diarizer(device="cpu", warmup=False, quiet=True)
    torch.set_num_threads(args.threads)
    import soundfile as sf

    # untimed warm-up on the first 10 s of the first file
    samples, rate = sf.read(files[0]["audio"], dtype="float32", frames=10 * 16000)
    diarizer.diarize_samples(samples, sample_rate=rate)
    timings = {}
    lines = []
    for file in files:
        wall, cpu = time.perf_counter(), time.process_time()
        result = diarizer.diarize(file["audio"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        timings[file["uri"]] = {"wall_s": wall, "cpu_s": cpu}
        for segment in (result or {}).get("merged_segments", []):
            start, end = float(segment["start"]), float(segment["end"])
            lines.append(
                f"SPEAKER {file['uri']} 1 {start:.3f} {end - start:.3f} "
                f"<NA> <NA> {segment['speaker']} <NA> <NA>\n"
            )
        print(f"{file['uri']}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    (args.out / "senko.rttm").write_text("".join(lines))
    (args.out / "timings.json").write_text(
        json.dumps(
            {
                "system": "senko",
                "version": getattr(senko, "__version__", "0.2.2"),
                "torch": torch.__version__,
                "threads": args.threads,
                "vad": diarizer.vad_model_type,
                "files": timings,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
