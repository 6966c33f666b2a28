import numpy as np
import pytest
import torch

from skseg.network import FrameGeometry, ParamSincFB, PyanNet, SincNet


def test_frame_geometry_matches_the_network():
    net = PyanNet(
        lstm={"hidden_size": 4, "num_layers": 1},
        linear={"hidden_size": 4, "num_layers": 1},
    ).eval()
    g = net.geometry
    assert (
        g.receptive_field_size(),
        g.receptive_field_step(),
        g.receptive_field_center(0),
    ) == (991, 270, 495)
    # (instance norm needs 2+ steps per layer, so inputs start at 2 frames)
    for n in (1261, 1530, 1531, 16000, 80000, 80269, 80270):
        with torch.inference_mode():
            frames = net(torch.randn(1, 1, n)).shape[1]
        assert g.num_frames(n) == frames, n


def test_formula_from_semantics():
    g = FrameGeometry(((251, 10), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3)))
    for n in range(991, 200000, 997):
        assert g.num_frames(n) == 1 + (n - 991) // 270


def test_sinc_filters_shape_and_symmetry():
    fb = ParamSincFB()
    w = fb.filters().detach()
    assert w.shape == (80, 1, 251)
    cos, sin = w[:40, 0], w[40:, 0]
    torch.testing.assert_close(cos, torch.flip(cos, dims=[1]))
    torch.testing.assert_close(sin, -torch.flip(sin, dims=[1]))


def test_non_monolithic_lstm_and_no_linear():
    net = PyanNet(
        lstm={"hidden_size": 4, "num_layers": 2, "monolithic": False},
        linear={"num_layers": 0},
    ).eval()
    assert "lstm.1.weight_ih_l0" in net.state_dict()
    assert not any(k.startswith("linear") for k in net.state_dict())
    with torch.inference_mode():
        out = net(torch.randn(2, 1, 32000))
    assert out.shape == (2, 115, 3)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_only_16k():
    with pytest.raises(ValueError, match="16 kHz"):
        PyanNet(sample_rate=8000)


def test_deterministic():
    torch.manual_seed(0)
    net = PyanNet(lstm={"hidden_size": 4, "num_layers": 1}).eval()
    x = torch.from_numpy(
        np.random.default_rng(0).standard_normal((1, 1, 20000)).astype("float32")
    )
    with torch.inference_mode():
        assert torch.equal(net(x), net(x))


def _sample_block(sample_waveform, num_chunks=12):
    return torch.from_numpy(sample_waveform[: (num_chunks - 1) * 8000 + 80000].copy())


@pytest.mark.slow
def test_sincnet_sub_batches_are_bit_identical(model, sample_waveform):
    # the default (exact) inference runs SincNet 4 chunks at a time
    net = model.network
    chunks = _sample_block(sample_waveform).unfold(0, 80000, 8000)[:, None]
    with torch.inference_mode():
        whole = net(chunks)
        for sub in (1, 4, 5):
            assert torch.equal(net(chunks, sincnet_batch=sub), whole), sub


@pytest.mark.slow
def test_shared_first_convolution_matches_per_chunk(model, sample_waveform):
    # the fast mode's rewrite conv(norm(x)) = a conv(x) + b sum(filter): equal in
    # exact arithmetic, within float32 rounding amplified by the network here
    net = model.network
    block = _sample_block(sample_waveform)
    chunks = block.unfold(0, 80000, 8000)[:, None]
    with torch.inference_mode():
        direct = net(chunks)
        shared = net.forward_overlapping(block, 80000, 8000)
        direct_features = net.sincnet(chunks)
        shared_features = net.sincnet.forward_overlapping(block, 80000, 8000)
    assert shared.shape == direct.shape == (12, 293, 3)
    assert float((shared_features - direct_features).abs().max()) < 1e-3
    assert float((shared - direct).abs().max()) < 5e-3
    # a step off the convolution's stride falls back to per-chunk convolutions
    with torch.inference_mode():
        odd = net.forward_overlapping(block[:88005], 80000, 8005)
        ref = net(block[:88005].unfold(0, 80000, 8005)[:, None])
    assert torch.equal(odd, ref)


def test_shared_pooling_commutes_with_the_rescaling():
    # max-pooling the extremes of z then rescaling equals rescaling then
    # pooling |a z + b|, for either sign of a (float rounding is monotone)
    torch.manual_seed(0)
    sincnet = SincNet(stride=10).eval()
    with torch.no_grad():
        for weight in (0.7, -0.7):
            sincnet.wav_norm1d.weight.fill_(weight)
            sincnet.wav_norm1d.bias.fill_(0.3)
            block = torch.randn(16000 * 7) * 0.1 + 0.05
            shared = sincnet.forward_overlapping(block, 80000, 3000)
            direct = sincnet(block.unfold(0, 80000, 3000)[:, None])
            assert shared.shape == direct.shape
            assert float((shared - direct).abs().max()) < 1e-3, weight


def _features_and_gradients(sincnet, waveforms):
    sincnet.zero_grad()
    features = sincnet(waveforms)
    (features**2).mean().backward()
    return features.detach(), {
        name: p.grad.clone() for name, p in sincnet.named_parameters()
    }


def test_training_path_equals_the_plain_one_and_is_training_only(monkeypatch):
    torch.manual_seed(0)
    # in float64, so that the two orders of operations agree to far below float32's
    # rounding (which |x| near 0 turns into sign flips of a few gradient terms)
    sincnet = SincNet(stride=10).double()
    with torch.no_grad():  # affine parameters away from identity, as trained
        sincnet.wav_norm1d.weight.fill_(1.7)
        sincnet.wav_norm1d.bias.fill_(-0.3)
    waveforms = torch.randn(3, 1, 16000, dtype=torch.float64)
    # an input that needs its own gradient takes the plain order of operations
    plain = _features_and_gradients(sincnet, waveforms.clone().requires_grad_(True))
    calls = []
    fast = SincNet._trainable_sinc

    def spy(self, x):
        calls.append(x.shape)
        return fast(self, x)

    monkeypatch.setattr(SincNet, "_trainable_sinc", spy)
    trained = _features_and_gradients(sincnet, waveforms)
    assert len(calls) == 1
    torch.testing.assert_close(trained[0], plain[0], rtol=1e-10, atol=1e-12)
    for name, grad in plain[1].items():
        # relative to the tensor's largest gradient (a bias before an instance norm
        # has a zero gradient up to rounding: nothing to compare)
        if name in ("conv1d.1.bias", "conv1d.2.bias"):
            continue
        error = (trained[1][name] - grad).abs().max()
        assert error <= 1e-9 * grad.abs().max(), name
    # inference (and a frozen normalisation) never takes it
    with torch.inference_mode():
        sincnet(waveforms)
    with torch.no_grad():
        sincnet(waveforms)
    sincnet.wav_norm1d.requires_grad_(False)
    sincnet(waveforms)
    assert len(calls) == 1
