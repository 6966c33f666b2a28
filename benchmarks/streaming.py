"""Streaming: accuracy, decision delay, CPU and memory against latency.

    python benchmarks/streaming.py                     # 5-minute conversation, 2 h RSS
    python benchmarks/streaming.py --minutes 2 --rss-hours 0.25   # a quick look

The conversation is generated from pyannote's sample (the only annotated audio
that ships): excerpts of 6 to 14 s at random places, their reference turns shifted
with them, separated by 0.3 to 3 s of pauses, over low noise (-50 dBFS) so that
no stretch is digital silence. For each latency (0.5, 1, 2 s and the chunk
duration) the VAD and OSD estimators (defaults, exact mode) stream it in 0.1 s
blocks on one CPU thread; the table gives the speech detection error rate and
the overlap F-measure against the reference, the same for offline inference,
the mean and max decision delay of the regions emitted before the end of the
stream, and the process CPU time per second of audio (network included).

The memory check streams ``--rss-hours`` of audio (the conversation, repeated)
through a VAD stream at 0.5 s latency in a fresh process and prints its resident
memory every tenth of the way and its peak (``ru_maxrss``): flat means the stream
holds a bounded buffer whatever its length.

Results are printed as Markdown tables (and written as JSON to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SR = 16000
LATENCIES = (0.5, 1.0, 2.0)


def conversation(minutes: float, seed: int = 0):
    """Return (waveform, reference Annotation) of a generated conversation."""
    import soundfile as sf
    from pyannote.core import Annotation, Segment

    from skseg import fetch_sample

    sample = fetch_sample()
    audio, sr = sf.read(sample["audio"], dtype="float32")
    assert sr == SR
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * SR)
    pieces, reference, at = [], Annotation(uri="conversation"), 0
    while at < total:
        pause = int(rng.uniform(0.3, 3.0) * SR)
        pieces.append(np.zeros(pause, dtype=np.float32))
        at += pause
        length = rng.uniform(6.0, 14.0)
        start = rng.uniform(0.0, 30.0 - length)
        a, b = int(start * SR), int((start + length) * SR)
        pieces.append(audio[a:b])
        offset = at / SR - a / SR
        for segment, track, label in (
            sample["annotation"]
            .crop(Segment(a / SR, b / SR))
            .itertracks(yield_label=True)
        ):
            reference[
                Segment(segment.start + offset, segment.end + offset), (at, track)
            ] = label
        at += b - a
    x = np.concatenate(pieces)[:total]
    x += 10 ** (-50 / 20) * rng.standard_normal(len(x)).astype(np.float32)
    reference = reference.crop(Segment(0, len(x) / SR))
    return x.astype(np.float32), reference


def scores(hypotheses: dict, reference, duration: float) -> dict:
    """Speech DetER (VAD) and overlap F-measure (OSD) of annotations."""
    from pyannote.core import Segment, Timeline

    from skseg.metrics import (
        DetectionErrorRateScorer,
        DetectionPrecisionRecallFMeasureScorer,
    )

    uem = Timeline([Segment(0, duration)])
    out = {}
    der = DetectionErrorRateScorer(target="speech")
    out["speech_deter"] = der.make_metric()(
        der.reference(reference), hypotheses["vad"], uem=uem
    )
    f = DetectionPrecisionRecallFMeasureScorer(target="overlap")
    out["overlap_f"] = f.make_metric()(
        f.reference(reference), hypotheses["osd"], uem=uem
    )
    return out


def run_stream(estimator, audio, latency, block: float = 0.1):
    """Stream audio in blocks; return (regions, CPU seconds, number emitted live)."""
    from skseg.streaming import stream

    live = stream(estimator, latency)
    step = int(block * SR)
    regions = []
    cpu = time.process_time()
    for i in range(0, len(audio), step):
        regions += live.feed(audio[i : i + step])
    live_regions = len(regions)
    regions += live.close()
    return regions, time.process_time() - cpu, live_regions


def accuracy_table(minutes: float) -> list[dict]:
    import torch

    from skseg import OSDEstimator, VADEstimator
    from skseg.streaming import to_annotation

    torch.set_num_threads(1)
    audio, reference = conversation(minutes)
    duration = len(audio) / SR
    estimators = {"vad": VADEstimator(cache=False), "osd": OSDEstimator(cache=False)}
    file = {"waveform": audio[None], "sample_rate": SR, "uri": "conversation"}
    rows = []
    cpu = time.process_time()
    offline = {name: e(file) for name, e in estimators.items()}
    offline_cpu = (time.process_time() - cpu) / 2
    rows.append(
        {
            "latency": "offline",
            **scores(offline, reference, duration),
            "delay_mean": None,
            "delay_max": None,
            "cpu_per_s": offline_cpu / duration,
            "regions": {k: len(v) for k, v in offline.items()},
        }
    )
    chunk = VADEstimator().score_source().model.duration
    for latency in (*LATENCIES, chunk):
        hyp, delays, cpus, counts = {}, [], [], {}
        for name, estimator in estimators.items():
            regions, cpu, live = run_stream(estimator, audio, latency)
            cpus.append(cpu)
            hyp[name] = to_annotation(regions, uri="conversation")
            counts[name] = len(regions)
            # the delays of the regions emitted live (close() emits the rest)
            delays += [r.delay for r in regions[:live]]
        rows.append(
            {
                "latency": latency,
                **scores(hyp, reference, duration),
                "delay_mean": float(np.mean(delays)) if delays else None,
                "delay_max": float(np.max(delays)) if delays else None,
                "cpu_per_s": float(np.mean(cpus)) / duration,
                "regions": counts,
                "same_as_offline": {
                    k: list(hyp[k].itersegments()) == list(offline[k].itersegments())
                    for k in hyp
                },
            }
        )
        print(f"latency {latency}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def rss_child(hours: float, latency: float) -> None:
    """In a fresh process: stream `hours` of audio, print RSS along the way (JSON)."""
    import torch

    from skseg import VADEstimator
    from skseg.streaming import stream

    torch.set_num_threads(1)
    audio, _ = conversation(5.0)
    live = stream(VADEstimator(cache=False), latency)
    total = int(hours * 3600 * SR)
    block = SR // 10
    marks = {int(total * k / 10) // block for k in range(1, 11)}
    samples, emitted, trace = 0, 0, []
    cpu = time.process_time()
    n = 0
    while samples < total:
        i = samples % len(audio)
        piece = audio[i : i + min(block, total - samples)]
        emitted += len(live.feed(piece))
        samples += len(piece)
        n += 1
        if n in marks:
            with open("/proc/self/status") as status:
                rss = next(int(line.split()[1]) for line in status if "VmRSS" in line)
            trace.append({"stream_s": samples / SR, "rss_mb": rss / 1024})
    emitted += len(live.close())
    print(
        json.dumps(
            {
                "hours": hours,
                "latency": latency,
                "regions": emitted,
                "cpu_per_s": (time.process_time() - cpu) / (samples / SR),
                "trace": trace,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                / 1024,
                "buffered_samples": live.buffered_samples,
            }
        )
    )


def markdown(rows: list[dict], rss: dict | None) -> str:
    lines = [
        "| latency (s) | speech DetER | overlap F | delay mean / max (s) "
        "| CPU s per s of audio (1 thread) | regions VAD / OSD |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        delay = (
            "-"
            if row["delay_mean"] is None
            else f"{row['delay_mean']:.2f} / {row['delay_max']:.2f}"
        )
        same = row.get("same_as_offline")
        note = " (= offline)" if same and all(same.values()) else ""
        lines.append(
            f"| {row['latency']}{note} | {100 * row['speech_deter']:.2f} % "
            f"| {100 * row['overlap_f']:.1f} % | {delay} | {row['cpu_per_s']:.3f} "
            f"| {row['regions']['vad']} / {row['regions']['osd']} |"
        )
    if rss is not None:
        lines += [
            "",
            f"RSS of a {rss['hours']:g} h stream at {rss['latency']} s latency "
            f"(MB, every tenth): "
            + ", ".join(f"{t['rss_mb']:.0f}" for t in rss["trace"])
            + f"; peak {rss['peak_rss_mb']:.0f} MB; CPU {rss['cpu_per_s']:.3f} s/s",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rss-hours", type=float, default=2.0)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--out", help="also write the results as JSON there")
    parser.add_argument("--rss-child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child, 0.5)
        return
    rows = [] if args.skip_accuracy else accuracy_table(args.minutes)
    rss = None
    if args.rss_hours > 0:
        done = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(args.rss_hours)],
            capture_output=True,
            text=True,
            check=True,
        )
        rss = json.loads(done.stdout.strip().splitlines()[-1])
    print(markdown(rows, rss))
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as out:
            json.dump(
                {"minutes": args.minutes, "rows": rows, "rss": rss}, out, indent=1
            )


if __name__ == "__main__":
    main()
