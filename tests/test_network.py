import numpy as np
import pytest
import torch

from skseg.network import FrameGeometry, ParamSincFB, PyanNet


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
