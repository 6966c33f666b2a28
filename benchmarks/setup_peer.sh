#!/usr/bin/env bash
# Build the peer environment for benchmarks/speed.py: pyannote.audio 4.0.7 in its
# OWN venv, outside the repository. pyannote.audio is never a dependency of skseg.
#
# usage: bash benchmarks/setup_peer.sh [PEER_DIR]
#        (default: $SKSEG_PEER_DIR, else ~/.cache/skseg/peer)
#
# The steps are those of the peer measurements (shared/peers/scripts/setup_venvs.sh,
# REPORT.md section 3), reduced to what the speed harness needs (no silero, no 3.4.0):
# CPU torch first, torchaudio/torchcodec without deps and with torchaudio's CUDA-linked
# .so files moved aside, pyannote.audio 4.0.7 without deps, its dependencies under a
# constraint file that pins torch, then omegaconf (the checkpoint pickles omegaconf
# objects). PYANNOTE_METRICS_ENABLED=false is set by the harness's worker at run time.
#
# Environment: PYTHON (default python3.11, else python3), TORCH_SPEC (default
# torch==2.13.0: the CPU build this machine's index serves; pass the one matching
# skseg's .venv so both tools run the same torch).
set -euo pipefail

P=${1:-${SKSEG_PEER_DIR:-$HOME/.cache/skseg/peer}}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

mkdir -p "$P/dl"
cd "$P"
# Guard: never let pip swap torch for a (CUDA, multi-GB) build.
printf '%s\ntorchaudio==2.11.0\ntorchcodec==0.17.0\n' "$TORCH_SPEC" > constraints-peer.txt

if [ ! -x venv/bin/python ]; then
    "$PYTHON" -m venv venv
fi
./venv/bin/pip install "$TORCH_SPEC"
# torchaudio / torchcodec on PyPI are CUDA builds pinned to other torch versions.
./venv/bin/pip install --no-deps torchaudio==2.11.0 torchcodec==0.17.0
# torchaudio 2.11's C++ extension needs libc10_cuda.so: move the .so files away so
# torchaudio imports in pure-Python mode. pyannote 4.0.7 tolerates the broken
# torchcodec at import, and the harness only passes in-memory waveforms.
SITE=$(./venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p disabled_torchaudio_libs
if compgen -G "$SITE/torchaudio/lib/*.so" > /dev/null; then
    mv "$SITE"/torchaudio/lib/*.so disabled_torchaudio_libs/
fi
./venv/bin/pip download --no-deps -d dl torch-audiomentations==0.12.0 \
    torch-pitch-shift==1.2.5 julius==0.2.8 pyannote.audio==4.0.7
./venv/bin/pip install --no-deps dl/torch_audiomentations-0.12.0-py3-none-any.whl \
    dl/torch_pitch_shift-1.2.5-py3-none-any.whl dl/julius-0.2.8-py3-none-any.whl \
    dl/pyannote_audio-4.0.7-py3-none-any.whl
./venv/bin/pip install -c constraints-peer.txt primePy packaging asteroid-filterbanks einops \
    huggingface-hub "lightning>=2.4" matplotlib opentelemetry-api opentelemetry-exporter-otlp \
    opentelemetry-sdk "pyannote-core>=6.0.1" "pyannote-database>=6.1.1" "pyannote-metrics>=4.0.0" \
    "pyannote-pipeline>=4.0.0" pyannoteai-sdk pytorch-metric-learning rich safetensors torchmetrics \
    soundfile
./venv/bin/pip install -c constraints-peer.txt omegaconf
PYANNOTE_METRICS_ENABLED=false ./venv/bin/python -c \
    'import warnings; warnings.filterwarnings("ignore"); import torch, pyannote.audio; print("peer ready:", pyannote.audio.__version__, "torch", torch.__version__)'
echo "peer python: $P/venv/bin/python"
