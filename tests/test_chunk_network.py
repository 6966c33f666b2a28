"""A network that is not PyanNet gets scores through the same source.

:class:`skseg.inference.ChunkNetwork` names what inference and the score cache
need from a network. A toy speaker-embedding network (one vector per chunk,
plain torch, nothing of PyanNet) implements it here, and gets the segmentation
model's cache, single flight and batching, without ever sharing its entries.
"""

import threading
import time

import numpy as np
import pytest
import torch
from pyannote.core import SlidingWindow

from skseg.audio import file_identity
from skseg.cache import get_cache, score_key
from skseg.inference import Inference, check_network
from skseg.model import load_model
from skseg.scores import ScoreSource, score_source

SR = 16000


class ToyEmbedding(torch.nn.Module):
    """One 4-dimensional vector per 5 s chunk: a linear map of chunk statistics.

    Records the size of every batch it is given (``calls``).
    """

    output_kind = "embedding"
    sample_rate = SR
    duration = 5.0
    dimension = 4

    def __init__(self, weights_digest="toy-embedding", delay=0.0):
        super().__init__()
        self.linear = torch.nn.Linear(3, self.dimension)
        with torch.no_grad():
            self.linear.weight.copy_(torch.arange(12.0).reshape(4, 3) / 10)
            self.linear.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
        self.weights_digest = weights_digest
        self.memo = {}
        self.calls = []
        self.delay = delay

    @property
    def receptive_field(self):
        return SlidingWindow(start=0.0, duration=self.duration, step=self.duration)

    def num_frames(self, num_samples):
        return 1

    def forward_chunks(self, chunks):
        self.calls.append(len(chunks))
        time.sleep(self.delay)  # a slow network: concurrent callers overlap
        x = chunks[:, 0]
        stats = torch.stack([x.mean(-1), x.std(-1), x.abs().amax(-1)], dim=-1)
        return self.linear(stats)[:, None, :]


def waveform(seconds, seed):
    rng = np.random.default_rng(seed)
    data = rng.uniform(-0.5, 0.5, round(seconds * SR)).astype("float32")
    return {"waveform": data[None], "sample_rate": SR, "uri": f"toy-{seed}"}


def expected_embeddings(network, data, step=0.5):
    """The chunks as pyannote cuts them (last one zero-padded), run at once."""
    window, hop = round(network.duration * SR), round(step * SR)
    starts = list(range(0, len(data) - window + 1, hop))
    if len(data) < window or (len(data) - window) % hop:
        starts.append(starts[-1] + hop if starts else 0)
    chunks = np.zeros((len(starts), 1, window), dtype="float32")
    for i, s in enumerate(starts):
        piece = data[s : s + window]
        chunks[i, 0, : len(piece)] = piece
    with torch.inference_mode():
        return network.forward_chunks(torch.from_numpy(chunks)).numpy()


@pytest.fixture
def one_thread():
    # Inference splits each batch between torch's threads: with one, the network
    # sees whole batches
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_toy_implements_the_protocol_and_segmentation_model_too(model):
    check_network(ToyEmbedding())
    check_network(model)
    assert isinstance(model.output_kind, str) and model.dimension == 3
    with pytest.raises(TypeError, match="ChunkNetwork.*lacks .*forward_chunks"):
        Inference(torch.nn.Linear(2, 2))


def test_a_non_pyannet_network_gets_scores_through_the_source(tmp_path):
    network = ToyEmbedding()
    file = waveform(12.3, seed=0)
    source = ScoreSource(network, cache=tmp_path / "scores")
    chunks = source.file(file).chunks()
    # 15 complete chunks, then one zero-padded: one vector each
    assert chunks.data.shape == (16, 1, 4)
    assert chunks.sliding_window.step == 0.5 and chunks.frames.duration == 5.0
    expected = expected_embeddings(network, file["waveform"][0])
    np.testing.assert_allclose(chunks.data, expected, rtol=1e-6, atol=1e-6)
    assert score_source(network) is score_source(network)


def test_a_second_call_is_a_cache_hit_even_from_the_directory(tmp_path):
    network = ToyEmbedding()
    file = waveform(9.0, seed=1)
    source = ScoreSource(network, cache=tmp_path / "scores")
    first = source.file(file).chunks()
    runs = sum(network.calls)
    assert runs == first.data.shape[0] == 9
    again = source.file(dict(file)).chunks()
    assert sum(network.calls) == runs and again is first
    # from the persistent directory alone (a fresh process would do this)
    get_cache(tmp_path / "scores").clear()
    reread = ScoreSource(network, cache=tmp_path / "scores").file(file).chunks()
    assert sum(network.calls) == runs
    np.testing.assert_array_equal(reread.data, first.data)
    frames = reread.frames
    assert (frames.start, frames.duration, frames.step) == (0.0, 5.0, 5.0)


def test_two_threads_asking_for_the_same_file_run_the_network_once(tmp_path):
    network = ToyEmbedding(delay=0.2)
    file = waveform(8.0, seed=2)
    source = ScoreSource(network, cache=tmp_path / "scores", batch_size=2)
    barrier = threading.Barrier(2)
    results = [None, None]

    def ask(i):
        barrier.wait()
        results[i] = source.file(dict(file)).chunks()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 7 chunks (6 complete, one padded), computed once for both callers
    assert sum(network.calls) == 7
    assert results[0] is results[1]
    assert source.cache.computed == 1


def test_the_network_receives_batches_of_batch_size_chunks(one_thread):
    network = ToyEmbedding()
    file = waveform(12.3, seed=3)
    chunks = ScoreSource(network, batch_size=4, cache=False).file(file).chunks()
    # 15 complete chunks in batches of 4, then the padded last one alone
    assert network.calls == [4, 4, 4, 3, 1]
    assert chunks.data.shape == (16, 1, 4)


def test_batches_are_shared_between_worker_threads_without_changing_outputs():
    network = ToyEmbedding()
    file = waveform(12.3, seed=4)
    chunks = Inference(network, batch_size=8)(file)
    assert max(network.calls) <= 8 and sum(network.calls) == 16
    expected = expected_embeddings(network, file["waveform"][0])
    np.testing.assert_allclose(chunks.data, expected, rtol=1e-6, atol=1e-6)


def test_every_mode_runs_without_the_optional_capabilities():
    # no forward_overlapping, no quantized(): the plain forward in every mode
    network = ToyEmbedding()
    file = waveform(7.0, seed=5)
    exact = Inference(network, step=0.5)(file).data
    balanced = Inference(network, step=0.5, mode="balanced")(file).data
    fast = Inference(network, step=0.5, mode="fast")(file).data
    np.testing.assert_array_equal(exact, balanced)
    np.testing.assert_array_equal(exact, fast)
    assert Inference(network, mode="fast")(file).data.shape == (3, 1, 4)


def test_a_network_breaking_its_promised_shape_is_refused():
    class Liar(ToyEmbedding):
        def num_frames(self, num_samples):
            return 2

    with pytest.raises(
        RuntimeError,
        match=r"Liar returned outputs of shape \(3, 1, 4\) "
        r"for 3 chunks .* promise \(3, 2, 4\)",
    ):
        Inference(Liar())(waveform(6.0, seed=6))


def test_never_the_segmentation_model_s_entries_on_the_same_file(model):
    # the toy even claims the segmentation model's digest and duration: its
    # output kind alone keeps the entries apart
    network = ToyEmbedding(weights_digest=model.weights_digest)
    file = waveform(6.0, seed=7)
    segmentation = ScoreSource(model).file(file)
    embedding = ScoreSource(network).file(file)
    assert segmentation.key != embedding.key
    assert segmentation.chunks().data.shape == (3, 293, 3)
    assert embedding.chunks().data.shape == (3, 1, 4)
    assert sum(network.calls) == 3
    assert ScoreSource(model).file(file).chunks().data.shape == (3, 293, 3)
    toy_key = score_key(
        model.weights_digest, file_identity(file), 0.5, 5.0, "exact", "embedding"
    )
    assert embedding.key == toy_key


# The keys of the two pretrained models, as they were before networks other than
# SegmentationModel could plug in: a persistent cache directory made then must
# still hit. (A float32 waveform: its identity is a hash of its samples.)
PINNED = {
    "pyannote/segmentation": {
        "digest": "ff73b8b7ccad4c1b6cf0306bbe138b9aa67a53f75b97f1d0e9157ed2f8688490",
        "exact": "9d7ef39d0d8151c268d66ad9524c0b1c377c0e69c4b299af38ab93190d97a0bc",
        "balanced": "3fcde2e9c5fed94bd7d4885e8141d725dad8ffed6c7020aef8d737890d867e24",
        "fast": "c52ee2d1fd8a2a2ca6cb3efc4e01549cd83160a7e432b246abfeb7699bb10dae",
    },
    "pyannote/segmentation-3.0": {
        "digest": "018ec34fb6734afb02ec24b23858d9eaaeccafc4d608d5d99e77c250ebcba240",
        "exact": "3be35ac35deff5ff056826a2ca0461b59624a9fc24d71a1e208d2775b8d138f8",
        "balanced": "8f93a3ed757f047b030c0cd27001285540bbd394f6347c77d155ec05a6cb5ed6",
        "fast": "0791bceebabb49d77e49a4f7e342757a1793cd7836f4dcb90def8ec632638b29",
    },
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_pretrained_models_keys_are_unchanged(name):
    ramp = np.linspace(-0.5, 0.5, SR * 12, dtype="float32")[None]
    file = {"waveform": ramp, "sample_rate": SR, "uri": "ramp"}
    network = load_model(name)
    assert network.weights_digest == PINNED[name]["digest"]
    for mode in ("exact", "balanced", "fast"):
        key = ScoreSource(network, mode=mode).key(dict(file))
        assert key.chunks == PINNED[name][mode] and key.derived == ()
