"""pyannote.audio 3.4.0's own fine-tuning of pyannote/segmentation: the peer of skseg's.

Runs INSIDE the pyannote.audio 3.4.0 peer environment (``bash
benchmarks/setup_peer34.sh``, default ``~/.cache/skseg/peer34``), never in skseg's:

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYANNOTE_METRICS_ENABLED=false \\
    ~/.cache/skseg/peer34/venv/bin/python benchmarks/peer_finetune34.py \\
        DATA/train --checkpoint CKPT --out peer.safetensors \\
        --steps 200 --batch-size 32 --seed 0 --lr 1e-4 --threads 2

``DATA/train`` is a folder as ``skseg tune`` and ``skseg finetune`` read it: audio
files (the uri is the file's stem) with RTTM and optional UEM files beside them
(``python -m skseg.synthetic`` writes such folders). ``CKPT`` is the 2021
checkpoint; skseg's cached copy is printed by
``python -c 'from skseg.hub import resolve_checkpoint;
print(resolve_checkpoint("pyannote/segmentation"))'``.

What it does, with pyannote.audio 3.4.0's own code only:

* a pyannote.database protocol over the folder (a ``database.yml`` plus uri list,
  RTTM and UEM written to a temporary folder; train subset only: no validation,
  so that every second measured is training);
* ``Model.from_pretrained(CKPT)`` and pyannote's multi-label segmentation task,
  ``pyannote.audio.tasks.Segmentation`` (= ``SpeakerDiarization`` without
  ``max_speakers_per_frame``): 5 s chunks drawn at random from annotated regions,
  3 speakers per chunk (the most talkative ones), permutation-invariant binary
  cross-entropy, optionally its extra voice-activity loss (``--vad-loss bce``);
* Adam at ``--lr`` (pyannote's default optimizer, at 1e-3, is replaced), a Lightning
  ``Trainer`` on the CPU for exactly ``--steps`` optimizer steps of ``--batch-size``
  chunks, ``seed_everything(--seed)``, ``torch.set_num_threads(--threads)``, data
  loaded in the main process (``--workers 0``, as skseg does).

It prints ONE JSON line::

    {"steps", "batch_size", "chunks_per_second", "wall_s", "train_s",
     "peak_rss_mb", "final_loss", "mean_loss", "out", ...}

where ``chunks_per_second`` is ``steps * batch_size`` over the training time (from
Lightning's ``on_train_start`` to ``on_train_end``: protocol, model and task set-up
excluded), ``wall_s`` is the whole run and ``peak_rss_mb`` the process's peak
resident memory. The fine-tuned ``state_dict`` (pyannote's parameter names, which
skseg's ``PyanNet`` loads with ``strict=True``; ``skseg.serialization.
model_from_state_dict`` puts it on the base checkpoint's architecture) is written
to ``--out`` as safetensors, with the ``safetensors`` library when the environment
has it, else by the few lines below (the format is an 8-byte header length, a JSON
header and the raw little-endian bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path

# before pyannote/torch are imported: the 2021 checkpoint pickles pyannote and
# omegaconf objects (torch >= 2.6 refuses them by default), and no telemetry
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", help="folder of audio + RTTM (+ UEM)")
    parser.add_argument("--checkpoint", required=True, help="2021 pytorch_model.bin")
    parser.add_argument("--out", required=True, help="output .safetensors path")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument(
        "--vad-loss", choices=["none", "bce", "mse"], default="none",
        help="pyannote's extra voice activity detection loss",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace --out")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.threads < 1 or args.workers < 0:
        fail("--steps, --batch-size and --threads must be >= 1, --workers >= 0")
    if not args.lr > 0:
        fail(f"--lr must be positive, got {args.lr}")
    if Path(args.out).exists() and not args.force:
        fail(f"{args.out}: exists; pass --force to replace it")
    if not Path(args.checkpoint).is_file():
        fail(f"{args.checkpoint}: no such checkpoint file")
    return args


def rttm_uris(path: Path) -> set[str]:
    return {
        fields[1]
        for fields in (line.split() for line in path.read_text().splitlines())
        if fields and fields[0] == "SPEAKER"
    }


def write_protocol(folder: Path, tmp: Path) -> str:
    """A pyannote.database protocol over ``folder``; returns its name."""
    if not folder.is_dir():
        fail(f"{folder}: no such folder")
    audio = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not audio:
        fail(f"{folder}: no audio files")
    rttms = sorted(folder.glob("*.rttm"))
    annotated = set().union(*(rttm_uris(p) for p in rttms)) if rttms else set()
    uris = [p.stem for p in audio]
    missing = [uri for uri in uris if uri not in annotated]
    if missing:
        fail(f"{folder}: no RTTM turns for {missing[:5]} ({len(missing)} files)")
    (tmp / "train.lst").write_text("".join(f"{uri}\n" for uri in uris))
    (tmp / "train.rttm").write_text("".join(p.read_text() for p in rttms))
    uems = sorted(folder.glob("*.uem"))
    if uems:
        (tmp / "train.uem").write_text("".join(p.read_text() for p in uems))
    else:  # whole files are annotated: a UEM from their durations
        import soundfile as sf

        (tmp / "train.uem").write_text(
            "".join(f"{p.stem} 1 0.000 {sf.info(p).duration:.3f}\n" for p in audio)
        )
    patterns = sorted({f"{folder.resolve()}/{{uri}}{p.suffix}" for p in audio})
    lines = ["Databases:", "  SksegFolder:"]
    lines += [f"    - {json.dumps(pattern)}" for pattern in patterns]
    lines += [
        "Protocols:",
        "  SksegFolder:",
        "    SpeakerDiarization:",
        "      Train:",
        "        train:",
        f"          uri: {json.dumps(str(tmp / 'train.lst'))}",
        f"          annotation: {json.dumps(str(tmp / 'train.rttm'))}",
        f"          annotated: {json.dumps(str(tmp / 'train.uem'))}",
    ]
    (tmp / "database.yml").write_text("\n".join(lines) + "\n")
    return "SksegFolder.SpeakerDiarization.Train"


def save_safetensors(state: dict, path: Path) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(state.items())}
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file = None
    if save_file is not None:
        save_file(tensors, str(path))
        return

    names = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64"}
    header, blobs, offset = {}, [], 0
    for key, tensor in tensors.items():
        array = tensor.numpy()
        dtype = names.get(str(array.dtype))
        if dtype is None:
            fail(f"tensor {key}: dtype {array.dtype} not handled by this writer")
        blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def main(argv=None) -> int:
    wall = time.perf_counter()
    args = parse_args(argv)
    # pyannote and Lightning print to stdout; stdout is for the JSON line only
    with contextlib.redirect_stdout(sys.stderr):
        result = finetune(args, wall)
    print(json.dumps(result))
    return 0


def finetune(args, wall: float) -> dict:

    import pytorch_lightning as pl
    import torch
    from pyannote.audio import Model
    from pyannote.audio.tasks import Segmentation
    from pyannote.database import FileFinder, registry

    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True, verbose=False)

    with tempfile.TemporaryDirectory(prefix="skseg-peer34-") as tmp:
        tmp = Path(tmp)
        name = write_protocol(Path(args.train), tmp)
        registry.load_database(tmp / "database.yml")
        protocol = registry.get_protocol(name, preprocessors={"audio": FileFinder()})

        model = Model.from_pretrained(args.checkpoint)
        base_keys = set(model.state_dict())
        spec = model.specifications
        task = Segmentation(
            protocol,
            duration=spec.duration,
            max_speakers_per_chunk=len(spec.classes),
            batch_size=args.batch_size,
            num_workers=args.workers,
            vad_loss=None if args.vad_loss == "none" else args.vad_loss,
            cache=str(tmp / "task-cache.npz"),
        )
        model.task = task

        lr = args.lr

        def configure_optimizers():
            return torch.optim.Adam(model.parameters(), lr=lr)

        # pyannote's Model.configure_optimizers is Adam at 1e-3; the same
        # optimizer at the learning rate asked for
        model.configure_optimizers = configure_optimizers

        class Clock(pl.Callback):
            def __init__(self):
                self.start = self.end = None
                self.losses = []

            def on_train_start(self, trainer, module):
                self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                if outputs is not None:
                    loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                    self.losses.append(float(loss))

            def on_train_end(self, trainer, module):
                self.end = time.perf_counter()

        clock = Clock()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=args.steps,
            max_epochs=-1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[clock],
            default_root_dir=str(tmp),
        )
        trainer.fit(model)
        if trainer.global_step != args.steps or clock.start is None:
            fail(
                f"trained {trainer.global_step} optimizer steps instead of "
                f"{args.steps} (is the training set shorter than one batch of "
                f"{spec.duration:g} s chunks?)"
            )
        train_s = clock.end - clock.start

        state = model.state_dict()
        if set(state) != base_keys:
            fail(
                "the fine-tuned state_dict does not have the base checkpoint's "
                f"parameters: extra {sorted(set(state) - base_keys)}, "
                f"missing {sorted(base_keys - set(state))}"
            )
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_safetensors(state, out)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "peer": "pyannote.audio 3.4.0",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "chunks_per_second": round(args.steps * args.batch_size / train_s, 3),
        "train_s": round(train_s, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "final_loss": round(clock.losses[-1], 5) if clock.losses else None,
        "mean_loss": round(sum(clock.losses) / len(clock.losses), 5)
        if clock.losses
        else None,
        "seed": args.seed,
        "lr": args.lr,
        "threads": args.threads,
        "vad_loss": args.vad_loss,
        "torch": torch.__version__,
        "out": str(out),
    }


if __name__ == "__main__":
    sys.exit(main())
