#!/usr/bin/env bash
# Build the pyannote.audio 3.4.0 peer environment in its OWN venv, outside the
# repository: the reference for the resegmentation differential test
# (benchmarks/reseg_differential.py) and for fine-tuning with pyannote's own
# trainer. pyannote.audio is never a dependency of skseg.
#
# usage: bash benchmarks/setup_peer34.sh [PEER34_DIR]
#        (default: $SKSEG_PEER34_DIR, else ~/.cache/skseg/peer34)
#        then: $PEER34_DIR/venv/bin/python, with at run time
#        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYANNOTE_METRICS_ENABLED=false
#
# The steps are venv3's of the peer measurements (shared/peers/scripts/setup_venvs.sh,
# REPORT.md section 3), plus what training needs: CPU torch first; torchaudio 2.8.0
# without deps (3.4.0 uses torchaudio.AudioMetaData and list_audio_backends, gone in
# 2.9) with its CUDA-linked .so files moved aside so it imports in pure-Python mode
# (soundfile backend); torch_audiomentations / torch_pitch_shift / julius and
# pyannote.audio 3.4.0 without deps; then 3.4.0's own requirements (pyannote.core < 6,
# database < 6, metrics < 4, pipeline < 4, lightning, torchmetrics, tensorboardX,
# omegaconf...) under a constraint file that pins torch and numpy < 2 (3.4.0's
# Resegmentation fails with numpy 2). speechbrain is deliberately left out: 3.4.0
# imports it only inside try/except, for the speaker-embedding pipelines.
# Writes $PEER34_DIR/READY once the final check passes (others wait for that file).
#
# Environment: PYTHON (default python3.11, else python3), TORCH_SPEC (default
# torch==2.13.0: the CPU build this machine's index serves; pass the one matching
# skseg's .venv so both tools run the same torch).
set -euo pipefail

P=${1:-${SKSEG_PEER34_DIR:-$HOME/.cache/skseg/peer34}}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

mkdir -p "$P/dl"
cd "$P"
rm -f READY
# Guard: never let pip swap torch for a (CUDA, multi-GB) build, nor numpy for 2.x.
printf '%s\ntorchaudio==2.8.0\nnumpy<2\n' "$TORCH_SPEC" > constraints-peer34.txt

if [ ! -x venv/bin/python ]; then
    "$PYTHON" -m venv venv
fi
./venv/bin/pip install "$TORCH_SPEC"
./venv/bin/pip install -c constraints-peer34.txt "numpy<2"
./venv/bin/pip download --no-deps -d dl torchaudio==2.8.0 torch-audiomentations==0.12.0 \
    torch-pitch-shift==1.2.5 julius==0.2.8 pyannote.audio==3.4.0
# torchaudio 2.8.0 on PyPI pins torch==2.8.0 and is a CUDA build: no deps, and its
# C++ extension moved away (torchaudio._extension._load_lib() then returns False).
./venv/bin/pip install --no-deps dl/torchaudio-2.8.0-*.whl \
    dl/torch_audiomentations-0.12.0-py3-none-any.whl \
    dl/torch_pitch_shift-1.2.5-py3-none-any.whl dl/julius-0.2.8-py3-none-any.whl \
    dl/pyannote_audio-3.4.0-py2.py3-none-any.whl
SITE=$(./venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p disabled_torchaudio28_libs
if compgen -G "$SITE/torchaudio/lib/*.so" > /dev/null; then
    mv "$SITE"/torchaudio/lib/*.so disabled_torchaudio28_libs/
fi
# 3.4.0's requirements (less speechbrain) and the dependencies of the no-deps wheels
# above; matplotlib and networkx are imported by its training and pipeline code.
./venv/bin/pip install -c constraints-peer34.txt primePy packaging \
    "asteroid-filterbanks>=0.4" "einops>=0.6.0" "huggingface_hub>=0.13.0" \
    "lightning>=2.0.1" "omegaconf>=2.1,<3.0" "pyannote.core>=5.0.0,<6.0" \
    "pyannote.database>=5.0.1,<6.0" "pyannote.metrics>=3.2,<4.0" \
    "pyannote.pipeline>=3.0.1,<4.0" "pytorch_metric_learning>=2.1.0" "rich>=12.0.0" \
    "semver>=3.0.0" "soundfile>=0.12.1" "tensorboardX>=2.6" "torchmetrics>=0.11.0" \
    matplotlib networkx scipy
# Final check: the resegmentation pipeline and everything a fine-tuning run imports,
# plus one permutation-invariant training step of PyanNet on random audio.
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYANNOTE_METRICS_ENABLED=false ./venv/bin/python - <<'EOF'
import warnings

warnings.filterwarnings("ignore")
import lightning
import numpy as np
import torch
import torch_audiomentations  # noqa: F401
import torchmetrics  # noqa: F401
import pyannote.audio
from pyannote.audio.models.segmentation import PyanNet
from pyannote.audio.pipelines import Resegmentation  # noqa: F401
from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin  # noqa: F401
from pyannote.audio.core.task import Problem, Resolution, Specifications
from pyannote.audio.tasks import SpeakerDiarization  # noqa: F401
from pyannote.audio.utils.loss import binary_cross_entropy
from pyannote.audio.utils.permutation import permutate

assert np.__version__.startswith("1."), np.__version__
model = PyanNet(sincnet={"stride": 10})
# pyannote/segmentation's specifications, as a task's setup() would set them
model.specifications = Specifications(
    problem=Problem.MULTI_LABEL_CLASSIFICATION, resolution=Resolution.FRAME,
    duration=5.0, classes=["speaker#1", "speaker#2", "speaker#3"],
    permutation_invariant=True)
model.build()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
waveform = torch.randn(2, 1, 16000 * 5)
scores = torch.sigmoid(model(waveform))
target = (torch.rand(scores.shape[:2] + (3,)) > 0.5).float()
permutated, _ = permutate(target, scores)
loss = binary_cross_entropy(permutated, target)
loss.backward()
optimizer.step()
print("peer34 ready:", pyannote.audio.__version__, "torch", torch.__version__,
      "numpy", np.__version__, "lightning", lightning.__version__)
EOF
touch READY
echo "peer34 python: $P/venv/bin/python"
