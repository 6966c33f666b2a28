import numpy as np
import pytest
from scipy.signal import resample_poly

from skseg.inference import ChunkScores, Inference, aggregate


@pytest.mark.slow
def test_raw_chunks_equal_pyannote(sample_chunks, reference_scores):
    assert isinstance(sample_chunks, ChunkScores)
    assert sample_chunks.data.shape == (51, 293, 3)
    w = sample_chunks.sliding_window
    assert (w.start, w.duration, w.step) == (0.0, 5.0, 0.5)
    # The reference was made on one CPU; this may run on another. pyannote's own
    # raw scores move by up to 1.9e-4 (mean 1.3e-7, 99.9th percentile 1.8e-5)
    # between oneDNN's AVX-512 and AVX2 kernels of the same torch, because the
    # network amplifies float32 rounding (docs/performance.md, "the parity
    # floor"). Where the kernels match, as on the machine that made it, the
    # difference is 0.0; the max bound here is the floor's order, and the bulk of
    # the scores is held to 1e-4. Same kernels, same numbers on this machine:
    # test_default_path_matches_the_plain_forward.
    diff = np.abs(sample_chunks.data - reference_scores["chunks"])
    assert diff.mean() <= 1e-6
    assert np.quantile(diff, 0.999) <= 1e-4
    assert diff.max() <= 1e-3


@pytest.mark.parametrize(
    "reduction, key", [("speech", "speech"), ("overlap", "overlap"), (None, "identity")]
)
def test_aggregation_equals_pyannote(sample_chunks, reference_scores, reduction, key):
    agg = aggregate(sample_chunks, reduction=reduction)
    assert agg.data.shape == reference_scores[key].shape
    assert np.abs(agg.data - reference_scores[key]).max() <= 1e-4
    f = agg.sliding_window
    assert (f.start, f.step, f.duration) == (0.0, 0.016875, 0.0619375)


def test_aggregation_arithmetic_is_exact(sample_chunks, reference_scores):
    # fed pyannote's own chunks, the overlap-add reproduces its output bit for bit
    chunks = ChunkScores(
        reference_scores["chunks"],
        sample_chunks.sliding_window,
        sample_chunks.frames,
        sample_chunks.num_samples,
        16000,
    )
    for reduction, key in [
        ("speech", "speech"),
        ("overlap", "overlap"),
        (None, "identity"),
    ]:
        np.testing.assert_array_equal(
            aggregate(chunks, reduction=reduction).data, reference_scores[key]
        )


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 7])
def test_batch_size_does_not_matter(model, sample, sample_chunks, batch_size):
    chunks = Inference(model, batch_size=batch_size)(sample)
    assert np.abs(chunks.data - sample_chunks.data).max() <= 1e-5


def test_file_shorter_than_a_chunk(model, sample_waveform):
    wav = sample_waveform[16000 * 8 : 16000 * 11]  # 3 s
    chunks = Inference(model)({"waveform": wav[None], "sample_rate": 16000})
    assert chunks.data.shape == (1, 293, 3) and chunks.last_chunk_padded
    speech = aggregate(chunks, reduction="speech")
    # pyannote 4.x keeps frames 0 .. floor(3 / 0.016875): 178 frames (SEMANTICS §1.6)
    assert speech.data.shape == (178, 1)
    assert speech.data.max() > 0.5


def test_partial_last_chunk_is_padded_and_cropped(model, sample_waveform):
    wav = sample_waveform[: int(16000 * 12.34)]
    chunks = Inference(model)({"waveform": wav[None], "sample_rate": 16000})
    assert chunks.data.shape[0] == 16 and chunks.last_chunk_padded
    assert aggregate(chunks, reduction="speech").data.shape == (732, 1)


def test_stereo_44k_matches_mono_16k(model, sample_waveform):
    mono = sample_waveform[: 16000 * 12]
    up = resample_poly(mono, 441, 160).astype("float32")
    stereo = np.stack([up, up])
    a = Inference(model)({"waveform": mono[None], "sample_rate": 16000})
    b = Inference(model)({"waveform": stereo, "sample_rate": 44100})
    assert a.data.shape == b.data.shape
    # two resampling passes: equal up to resampling error
    assert np.abs(a.data - b.data).mean() < 1e-3
    sa, sb = aggregate(a, reduction="speech"), aggregate(b, reduction="speech")
    assert np.abs(sa.data - sb.data).max() < 0.05


def test_step_and_batch_validation(model):
    with pytest.raises(ValueError, match="step"):
        Inference(model, step=6.0)
    with pytest.raises(ValueError, match="batch_size"):
        Inference(model, batch_size=0)


@pytest.mark.slow
def test_progress_hook(model, sample):
    calls = []
    Inference(model, batch_size=16)(
        sample, hook=lambda done, total: calls.append((done, total))
    )
    assert calls[-1] == (51, 51) and len(calls) == 4


@pytest.mark.slow
def test_default_path_matches_the_plain_forward(model, sample, sample_chunks):
    # old path: every chunk through model(...) in batches of 32, one call each;
    # new path: worker threads, SincNet in sub-batches (bit-identical pieces)
    import soundfile as sf
    import torch

    wav, _ = sf.read(sample["audio"], dtype="float32")
    chunks = torch.from_numpy(wav).unfold(0, 80000, 8000)[:, None]
    with torch.inference_mode():
        old = np.concatenate([model(b).numpy() for b in chunks.split(32)])
    assert old.shape == sample_chunks.data.shape
    assert np.abs(sample_chunks.data - old).max() <= 1e-6


@pytest.mark.slow
def test_worker_threads_give_the_same_numbers(model, sample, sample_chunks):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # no worker threads at all
        single = Inference(model)(sample)
        torch.set_num_threads(3)  # 51 chunks in 3 uneven parts per batch
        three = Inference(model, batch_size=20)(sample)
        # the caller's thread count survives the workers' set_num_threads(1)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert np.abs(single.data - sample_chunks.data).max() <= 1e-6
    assert np.abs(three.data - sample_chunks.data).max() <= 1e-6


def test_pipelined_blocks_report_in_order(model, sample, sample_chunks):
    import torch

    before = torch.get_num_threads()
    calls = []
    try:
        torch.set_num_threads(2)  # worker threads, two blocks in flight
        chunks = Inference(model, batch_size=8)(
            sample, hook=lambda done, total: calls.append((done, total))
        )
    finally:
        torch.set_num_threads(before)
    assert calls == [(c, 51) for c in (8, 16, 24, 32, 40, 48, 51)]
    assert np.abs(chunks.data - sample_chunks.data).max() <= 1e-6


def test_a_failed_read_stops_the_queued_work(model, sample, monkeypatch):
    import time

    import torch

    from skseg.audio import AudioReader
    from skseg.exceptions import AudioError

    read, reads = AudioReader.read, []

    def failing_read(self, start, stop):
        reads.append(start)
        if len(reads) == 4:
            raise AudioError("sample.wav", "bad block")
        return read(self, start, stop)

    runs = []
    scores = Inference._scores

    def counted(self, *args):
        out = scores(self, *args)
        runs.append(1)  # counted when done: work still running would show later
        return out

    monkeypatch.setattr(AudioReader, "read", failing_read)
    monkeypatch.setattr(Inference, "_scores", counted)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(AudioError, match="bad block"):
            Inference(model, batch_size=8)(sample)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    # blocks 1-3 were queued (2 parts each); nothing runs once the call has returned
    settled = len(runs)
    time.sleep(0.3)
    assert len(runs) == settled <= 6


def test_cuda_without_cuda_names_the_problem(model, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
        Inference(model, device="cuda")


@pytest.mark.gpu
def test_cuda_matches_cpu(model, sample, sample_chunks):
    """Runs with `make test-gpu` on a machine with CUDA; deselected elsewhere."""
    import torch

    assert torch.cuda.is_available(), "make test-gpu needs a CUDA build and a GPU"
    chunks = Inference(model, device="cuda")(sample)
    assert np.abs(chunks.data - sample_chunks.data).max() <= 1e-4
    assert not torch.backends.cuda.matmul.allow_tf32
