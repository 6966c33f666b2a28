"""Each public entry point refuses a bad argument at once, naming it.

One parametrised case per bad argument (type, range, bad path): the error is the
documented type, its one-line message names the argument (and the file, where there
is one), and it comes before any file is read or written: the cases below give
files that do not exist, so an argument checked late would fail on them instead.
"""

from __future__ import annotations

import math
import os

import pytest
from pyannote.core import Annotation
from sklearn.utils._param_validation import InvalidParameterError

from skseg import (
    FileError,
    Inference,
    SegmentationTrainer,
    VADEstimator,
    aggregate,
    fetch_sample,
    load_checkpoint,
    load_folder,
    load_model,
    predict_many,
    read_rttm,
    read_uem,
    save_model,
    tune,
    write_rttm,
    write_uem,
)
from skseg.exceptions import CheckpointError
from skseg.serialization import load_network

MISSING = ["missing.wav"]


def model():
    return load_model()


CASES = {
    # predict_many
    "predict_many method": (
        lambda tmp: predict_many(VADEstimator(), MISSING, method="fit"),
        InvalidParameterError,
        r"'method' parameter of predict_many .* Got 'fit'",
    ),
    "predict_many errors": (
        lambda tmp: predict_many(VADEstimator(), MISSING, errors="ignore"),
        InvalidParameterError,
        r"'errors' parameter of predict_many .* Got 'ignore'",
    ),
    "predict_many n_jobs=0": (
        lambda tmp: predict_many(VADEstimator(), MISSING, n_jobs=0),
        InvalidParameterError,
        r"'n_jobs' parameter of predict_many .* Got 0",
    ),
    "predict_many n_jobs str": (
        lambda tmp: predict_many(VADEstimator(), MISSING, n_jobs="2"),
        InvalidParameterError,
        r"'n_jobs' parameter of predict_many",
    ),
    "predict_many on_result": (
        lambda tmp: predict_many(VADEstimator(), MISSING, on_result=5),
        InvalidParameterError,
        r"'on_result' parameter of predict_many must be a callable",
    ),
    "predict_many progress": (
        lambda tmp: predict_many(VADEstimator(), MISSING, progress="yes"),
        InvalidParameterError,
        r"'progress' parameter of predict_many must be a callable",
    ),
    "predict_many estimator": (
        lambda tmp: predict_many(object(), MISSING),
        InvalidParameterError,
        r"'estimator' parameter of predict_many must have a 'predict' method",
    ),
    "predict_many one path": (
        lambda tmp: predict_many(VADEstimator(), "missing.wav"),
        TypeError,
        r"X must be a list of files, got a single str \('missing.wav'\)",
    ),
    "predict_many one dict": (
        lambda tmp: predict_many(VADEstimator(), {"audio": "missing.wav"}),
        TypeError,
        r"X must be a list of files, got a single dict \('missing.wav'\)",
    ),
    "predict_many not iterable": (
        lambda tmp: predict_many(VADEstimator(), 5),
        TypeError,
        r"X must be a list of files, got int",
    ),
    # tune
    "tune one path": (
        lambda tmp: tune(VADEstimator(), "missing.wav"),
        TypeError,
        r"X must be a list of files, got a single str",
    ),
    "tune folds=1": (
        lambda tmp: tune(VADEstimator(), MISSING, folds=1),
        InvalidParameterError,
        r"'folds' parameter of tune .* Got 1",
    ),
    "tune folds str": (
        lambda tmp: tune(VADEstimator(), MISSING, folds="3"),
        InvalidParameterError,
        r"'folds' parameter of tune",
    ),
    "tune excerpt=0": (
        lambda tmp: tune(VADEstimator(), MISSING, excerpt=0.0),
        InvalidParameterError,
        r"'excerpt' parameter of tune .* Got 0.0",
    ),
    "tune excerpt nan": (
        lambda tmp: tune(VADEstimator(), MISSING, excerpt=math.nan),
        InvalidParameterError,
        r"'excerpt' parameter of tune .* Got nan",
    ),
    "tune param_grid": (
        lambda tmp: tune(VADEstimator(), MISSING, param_grid=[0.5]),
        InvalidParameterError,
        r"'param_grid' parameter of tune",
    ),
    "tune n_jobs=0": (
        lambda tmp: tune(VADEstimator(), MISSING, n_jobs=0),
        InvalidParameterError,
        r"'n_jobs' parameter of tune",
    ),
    "tune estimator": (
        lambda tmp: tune("vad", MISSING),
        InvalidParameterError,
        r"'estimator' parameter of tune",
    ),
    "tune y length": (
        lambda tmp: tune(VADEstimator(), MISSING * 2, y=[None]),
        ValueError,
        r"X has 2 files but y has 1 references",
    ),
    # save_model / load_network / load_model
    "save_model model": (
        lambda tmp: save_model("pyannote/segmentation", tmp / "net"),
        InvalidParameterError,
        r"'model' parameter of save_model .* Got 'pyannote/segmentation'",
    ),
    "save_model path": (
        lambda tmp: save_model(model(), 5),
        InvalidParameterError,
        r"'path' parameter of save_model",
    ),
    "save_model provenance": (
        lambda tmp: save_model(model(), tmp / "net", provenance=["a"]),
        InvalidParameterError,
        r"'provenance' parameter of save_model",
    ),
    "save_model overwrite": (
        lambda tmp: save_model(model(), tmp / "net", overwrite="yes"),
        InvalidParameterError,
        r"'overwrite' parameter of save_model",
    ),
    "save_model onto a file": (
        lambda tmp: save_model(model(), tmp / "file.txt"),
        FileError,
        r"file\.txt: is a file, not a folder",
    ),
    "load_network path": (
        lambda tmp: load_network(5),
        InvalidParameterError,
        r"'path' parameter of load_network",
    ),
    "load_network missing": (
        lambda tmp: load_network(tmp / "nothing"),
        CheckpointError,
        r"nothing[/\\]config\.json: no such file",
    ),
    "load_model checkpoint": (
        lambda tmp: load_model(5),
        InvalidParameterError,
        r"'checkpoint' parameter of load_model",
    ),
    "load_checkpoint path": (
        lambda tmp: load_checkpoint(5),
        InvalidParameterError,
        r"'path' parameter of load_checkpoint",
    ),
    # RTTM, UEM, folders (an integer path would read or write a file descriptor)
    "read_rttm path": (
        lambda tmp: read_rttm(0),
        InvalidParameterError,
        r"'path' parameter of read_rttm .* Got 0",
    ),
    "read_uem path": (
        lambda tmp: read_uem(0),
        InvalidParameterError,
        r"'path' parameter of read_uem .* Got 0",
    ),
    "read_rttm missing": (
        lambda tmp: read_rttm(tmp / "nothing.rttm"),
        FileError,
        r"nothing\.rttm: no such file",
    ),
    "write_rttm file": (
        lambda tmp: write_rttm(Annotation(uri="a"), 1),
        InvalidParameterError,
        r"'file' parameter of write_rttm",
    ),
    "write_rttm annotations": (
        lambda tmp: write_rttm(["a"], tmp / "out.rttm"),
        TypeError,
        r"annotations must be Annotations, got a str",
    ),
    "write_rttm mapping": (
        lambda tmp: write_rttm({"a": "b"}, tmp / "out.rttm"),
        TypeError,
        r"annotations must be Annotations, got a str",
    ),
    "write_uem timelines": (
        lambda tmp: write_uem([1], tmp / "out.uem"),
        InvalidParameterError,
        r"'timelines' parameter of write_uem",
    ),
    "write_uem file": (
        lambda tmp: write_uem({}, 1),
        InvalidParameterError,
        r"'file' parameter of write_uem",
    ),
    "load_folder folder": (
        lambda tmp: load_folder(5),
        InvalidParameterError,
        r"'folder' parameter of load_folder",
    ),
    "load_folder missing": (
        lambda tmp: load_folder(tmp / "nothing"),
        FileError,
        r"nothing: no such folder",
    ),
    "aggregate chunks": (
        lambda tmp: aggregate(5),
        TypeError,
        r"chunks must be ChunkScores or a SlidingWindowFeature, not int",
    ),
    # fetch_sample
    "fetch_sample data_home": (
        lambda tmp: fetch_sample(5),
        InvalidParameterError,
        r"'data_home' parameter of fetch_sample",
    ),
    "fetch_sample onto a file": (
        lambda tmp: fetch_sample(tmp / "file.txt"),
        FileError,
        r"file\.txt: is not a folder",
    ),
    # Inference
    "Inference model": (
        lambda tmp: Inference(5),
        TypeError,
        r"Inference needs a network .*; int lacks",
    ),
    "Inference step": (
        lambda tmp: Inference(model(), step=-1.0),
        InvalidParameterError,
        r"'step' parameter of Inference",
    ),
    "Inference batch_size": (
        lambda tmp: Inference(model(), batch_size=0),
        InvalidParameterError,
        r"'batch_size' parameter of Inference",
    ),
    "Inference mode": (
        lambda tmp: Inference(model(), mode="quick"),
        InvalidParameterError,
        r"'mode' parameter of Inference",
    ),
    # SegmentationTrainer.fit
    "fit one path": (
        lambda tmp: SegmentationTrainer().fit("missing.wav"),
        TypeError,
        r"X must be a list of files, got a single str",
    ),
    "fit validation": (
        lambda tmp: SegmentationTrainer().fit(MISSING, validation=MISSING),
        TypeError,
        r"validation must be a pair \(X_val, y_val\), got list",
    ),
    "fit validation one path": (
        lambda tmp: SegmentationTrainer().fit(MISSING, validation=("a.wav", None)),
        TypeError,
        r"X must be a list of files, got a single str",
    ),
    "fit callback": (
        lambda tmp: SegmentationTrainer().fit(MISSING, callback="print"),
        TypeError,
        r"callback must be callable, got str",
    ),
    "fit mix_probability": (
        lambda tmp: SegmentationTrainer(mix_probability="half").fit(MISSING),
        ValueError,
        r"mix_probability must be in \[0, 1\], got 'half'",
    ),
    "fit validation_fraction": (
        lambda tmp: SegmentationTrainer(validation_fraction=math.nan).fit(MISSING),
        ValueError,
        r"validation_fraction must be in \[0, 1\), got nan",
    ),
    "fit max_epochs": (
        lambda tmp: SegmentationTrainer(max_epochs=0).fit(MISSING),
        ValueError,
        r"max_epochs must be a positive integer, got 0",
    ),
    "fit segmentation": (
        lambda tmp: SegmentationTrainer(segmentation=5).fit(MISSING),
        TypeError,
        r"segmentation must be a path, an identifier or a SegmentationModel",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_argument_is_refused_at_once_naming_it(case, tmp_path):
    call, error, match = CASES[case]
    (tmp_path / "file.txt").write_text("not a folder")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(error, match=match) as caught:
        call(tmp_path)
    assert "\n" not in str(caught.value), "one line"
    # nothing was written before the refusal
    assert sorted(os.listdir(tmp_path)) == before


def test_the_command_line_says_it_in_the_flags_terms(tmp_path, capsys):
    from skseg.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["tune", str(tmp_path), "--pipeline", "vad", "--folds", "1"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "skseg tune: error: --folds 1: cross-validation needs at least 2"
