"""The `skseg` command: the real command in a subprocess on the real sample, and
its error paths in-process (cheap: they stop before the network runs)."""

import argparse
import io
import json
import os
import struct
import subprocess
import sys

import joblib
import numpy as np
import pytest

from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
)
from skseg.cli import main
from skseg.cli.common import progress
from skseg.io import read_rttm, write_rttm, write_uem
from skseg.metrics import DetectionErrorRateScorer, DiarizationErrorRateScorer


def skseg(*args, cwd=None, env=None):
    """Run `python -m skseg ARGS` as a user would; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "skseg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=None if env is None else {**os.environ, **env},
    )


class Fixed:
    """An "estimator" predicting given annotations: scores RTTM files with the
    scorers of skseg.metrics."""

    def __init__(self, annotations):
        self.annotations = annotations

    def predict(self, X):
        return [self.annotations[file["uri"]] for file in X]


def rttm_text(annotations):
    out = io.StringIO()
    write_rttm(annotations, out)
    return sorted(out.getvalue().splitlines())


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample):
    """Two audio files (links to the sample, uris "a" and "b") and a list file that
    also names one missing file, between them."""
    folder = tmp_path_factory.mktemp("cli")
    for name in ("a", "b"):
        os.symlink(sample["audio"], folder / f"{name}.wav")
    (folder / "list.txt").write_text(
        "# two files and one missing\na.wav\ngone.wav\nb.wav\n"
    )
    return folder


# -- subprocess: the real command ------------------------------------------------------
@pytest.mark.slow
def test_vad_list_with_missing_file_writes_others_and_exits_1(files):
    out = files / "vad.rttm"
    run = skseg("vad", files / "list.txt", "--rttm", out)
    assert run.returncode == 1, run.stderr
    # the missing file is named with its problem; the summary counts it
    assert f"{files / 'gone.wav'}: file not found" in run.stderr
    assert "1 of 3 files failed" in run.stderr
    # the others' results are written, equal to the estimator's predictions
    expected = VADEstimator().predict([files / "a.wav", files / "b.wav"])
    assert sorted(read_rttm(out)) == ["a", "b"]
    assert sorted(out.read_text().splitlines()) == rttm_text(expected)
    assert len(rttm_text(expected)) == 6  # 3 speech regions per file: not vacuous
    assert run.stdout == ""  # RTTM went to the file, not to stdout


@pytest.mark.slow
def test_one_file_counts_its_chunks(files, tmp_path):
    # a single long file would otherwise show "0/1 files" until it is done
    run = skseg("vad", files / "a.wav", "--rttm", tmp_path / "a.rttm", "--progress")
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.replace("\r", "\n").splitlines() if line]
    assert lines and all(line.startswith("vad: ") for line in lines), run.stderr
    assert "51/51 chunks" in lines[-1]  # the sample's 51 chunks of 5 s
    # two files: counted by file
    run = skseg(
        "vad", files / "a.wav", files / "b.wav", "--out", tmp_path, "--progress"
    )
    assert run.returncode == 0, run.stderr
    assert "2/2 files" in run.stderr.splitlines()[-1]


@pytest.mark.slow
def test_pipeline_joblib_round_trip_out_dir(files, tmp_path):
    tuned = OSDEstimator(onset=0.6, offset=0.3, min_duration_on=0.05)
    joblib.dump(tuned, tmp_path / "osd.joblib")
    out = tmp_path / "rttm"
    run = skseg(
        "osd", files / "a.wav", "--pipeline", tmp_path / "osd.joblib", "--out", out
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.rttm"]
    expected = tuned.predict([files / "a.wav"])
    # the tuned thresholds were used: the defaults give other regions
    assert rttm_text(expected) != rttm_text(OSDEstimator().predict([files / "a.wav"]))
    assert sorted((out / "a.rttm").read_text().splitlines()) == rttm_text(expected)


@pytest.mark.slow
def test_usage_error_exits_2():
    run = skseg("vad", "--onset")  # --onset without its value, no input
    assert run.returncode == 2
    assert run.stderr.startswith("usage: skseg vad")
    assert "error:" in run.stderr and run.stdout == ""


@pytest.mark.slow
def test_plot_writes_a_png_showing_the_regions(files, tmp_path, sample):
    reference = tmp_path / "ref.rttm"
    annotation = sample["annotation"].copy()
    annotation.uri = "a"
    write_rttm(annotation, reference)
    figure = tmp_path / "fig.png"
    run = skseg(
        "plot", files / "a.wav", "--reference", reference, "--out", figure, "--dpi", 80
    )
    assert run.returncode == 0, run.stderr
    data = figure.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width == 12 * 80  # --width 12 inches at --dpi 80
    from PIL import Image

    image = np.asarray(Image.open(figure).convert("RGB"))
    assert image.shape == (height, width, 3) and height > 300
    # the regions are drawn as filled bars in tab10's first two colours (prediction,
    # reference speaker 1; reference speaker 2): both cover a visible area
    for rgb in ((31, 119, 180), (255, 127, 14)):
        share = np.all(image == rgb, axis=-1).mean()
        assert share > 0.01, (rgb, share)


@pytest.mark.slow
def test_evaluate_prints_the_scorers_detection_error_rate(tmp_path, sample):
    hypothesis = tmp_path / "hyp.rttm"
    write_rttm(VADEstimator().predict([sample]), hypothesis)
    reference, uem = tmp_path / "ref.rttm", tmp_path / "ref.uem"
    write_rttm(sample["annotation"], reference)
    write_uem({"sample": sample["annotated"]}, uem)
    run = skseg(
        "evaluate", "--reference", reference, "--hypothesis", hypothesis, "--uem", uem
    )
    assert run.returncode == 0, run.stderr
    # the scorer of skseg.metrics on the same (RTTM, so millisecond) boundaries
    expected = -DetectionErrorRateScorer("speech")(
        Fixed(read_rttm(hypothesis)), [sample]
    )
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines()}
    assert float(rows["sample"][1]) == pytest.approx(100 * expected, abs=0.005)
    assert float(rows["TOTAL"][1]) == pytest.approx(100 * expected, abs=0.005)
    assert 0.01 < expected < 0.03  # 1.65 %: a real error rate, not 0


# -- in-process: other commands and error paths ---------------------------------------
def test_evaluate_greedy_diarization_per_file_and_total(tmp_path, sample, capsys):
    estimator = SegmentationEstimator()
    hyp = estimator.predict([sample])[0]
    # two uris: the sample, and its first half as another "file"
    from pyannote.core import Segment, Timeline

    half = sample["annotation"].crop(Segment(0, 15))
    references = {"sample": sample["annotation"], "half": half}
    hypotheses = {"sample": hyp, "half": hyp.crop(Segment(0, 15))}
    write_rttm(references, tmp_path / "ref.rttm")
    write_rttm(hypotheses, tmp_path / "hyp.rttm")
    uems = {"sample": sample["annotated"], "half": Timeline([Segment(0, 15)])}
    write_uem(uems, tmp_path / "ref.uem")
    status = main(
        [
            "evaluate",
            "--reference", str(tmp_path / "ref.rttm"),
            "--hypothesis", str(tmp_path / "hyp.rttm"),
            "--uem", str(tmp_path / "ref.uem"),
            "--metric", "greedy-diarization",
        ]
    )  # fmt: skip
    assert status == 0
    rows = {
        line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
    }
    # what skseg.metrics computes from the same RTTM files, per file and in total
    scorer = DiarizationErrorRateScorer(greedy=True)
    read = read_rttm(tmp_path / "hyp.rttm")
    X = [
        {"audio": sample["audio"], "uri": uri, "annotated": uems[uri]}
        for uri in ("half", "sample")
    ]
    for file in X:
        expected = -scorer(Fixed(read), [file], [references[file["uri"]]])
        assert float(rows[file["uri"]][1]) == pytest.approx(100 * expected, abs=0.005)
    total = -scorer(Fixed(read), X, [references["half"], references["sample"]])
    assert float(rows["TOTAL"][1]) == pytest.approx(100 * total, abs=0.005)
    assert float(rows["half"][1]) != float(rows["sample"][1])


def test_wrong_estimator_class_in_pipeline_is_a_usage_error(tmp_path, capsys):
    joblib.dump(OSDEstimator(), tmp_path / "osd.joblib")
    joblib.dump({"not": "an estimator"}, tmp_path / "dict.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    cases = {
        "osd.joblib": "holds a OSDEstimator (the osd pipeline), not a VADEstimator",
        "dict.joblib": "holds a dict, not a skseg estimator",
        "junk.joblib": "not a joblib file of a skseg estimator",
        "none.joblib": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(SystemExit) as exit:
            main(["vad", "x.wav", "--pipeline", str(tmp_path / name)])
        assert exit.value.code == 2
        assert message in capsys.readouterr().err, name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["vad", "x.wav", "--onset", "1.5"], "'onset' parameter of VADEstimator"),
        (["vad", "x.wav", "--batch-size", "0"], "must be >= 1"),
        (["vad", "x.wav", "--rttm", "a", "--out", "b"], "not allowed with argument"),
        (["resegment", "x.wav"], "--baseline"),
        (["segment", "x.wav", "--segmentation", "/no/such.ckpt"], "no such checkpoint"),
        (["tune", "/no/such/folder", "--pipeline", "vad"], "no such folder"),
        (["evaluate", "--reference", "/no/ref.rttm", "--hypothesis", "h"], "no such"),
    ],
)
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_duplicate_uris_are_refused(tmp_path, files, capsys):
    (tmp_path / "sub").mkdir()
    os.symlink(files / "a.wav", tmp_path / "sub" / "a.wav")
    with pytest.raises(SystemExit) as exit:
        main(["vad", str(files / "a.wav"), str(tmp_path / "sub" / "a.wav")])
    assert exit.value.code == 2
    assert "uri(s) name several inputs, e.g. 'a'" in capsys.readouterr().err


def test_resegment_matches_baseline_by_uri(files, tmp_path, sample, capsys):
    baseline = SegmentationEstimator().predict([files / "a.wav"])[0]
    write_rttm(baseline, tmp_path / "baseline.rttm")  # uri "a" only: "b" fails
    status = main(
        ["resegment", str(files / "a.wav"), str(files / "b.wav"), "-q",
         "--baseline", str(tmp_path / "baseline.rttm"), "--rttm", str(tmp_path / "o")]
    )  # fmt: skip
    assert status == 1
    err = capsys.readouterr().err
    assert f"{files / 'b.wav'}: no turns for uri 'b' in the baseline" in err
    expected = ResegmentationEstimator().predict(
        [{"audio": str(files / "a.wav"), "baseline": baseline}]
    )
    assert sorted((tmp_path / "o").read_text().splitlines()) == rttm_text(expected)


def test_tune_writes_joblib_and_prints_the_row(tmp_path, sample, capsys):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(sample["audio"], data / "sample.wav")
    write_rttm(sample["annotation"], data / "sample.rttm")
    grid = {"onset": [0.5, 0.8], "offset": [0.4], "min_duration_on": [0.0],
            "min_duration_off": [0.0]}  # fmt: skip
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    out = tmp_path / "vad.joblib"
    status = main(
        ["tune", str(data), "--pipeline", "vad", "--grid", str(tmp_path / "grid.json"),
         "--out", str(out), "--dataset", "sample", "--quiet"]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("| dataset | onset | offset |")
    row = printed[2].split("|")
    tuned = joblib.load(out)
    assert type(tuned) is VADEstimator
    assert row[1].strip() == "sample"
    assert float(row[2]) == tuned.onset and tuned.onset in (0.5, 0.8)
    assert row[6].strip() == "detection error rate"
    # the score printed is the tuned estimator's mean over the 3 excerpts' folds
    from skseg.tuning import split_excerpts

    duration = sample["annotated"].extent().duration / 3  # tune's automatic excerpts
    X, y = split_excerpts([sample], None, duration=duration)
    scorer = DetectionErrorRateScorer("speech")
    mean = -np.mean([scorer(tuned, [x]) for x in X])
    assert float(row[7].split()[0]) == pytest.approx(100 * mean, abs=0.005)


def test_download_weights_prints_path_and_sha256(checkpoint_path, capsys):
    from skseg.hub import MIRRORS

    assert main(["download-weights"]) == 0
    captured = capsys.readouterr()
    digest, path = captured.out.split()
    assert digest == MIRRORS["pyannote/segmentation"].sha256
    assert os.path.samefile(path, checkpoint_path)
    assert "matches the pinned sha256" in captured.err
    assert main(["download-weights", "--checkpoint", "/no/such.bin"]) == 1
    assert "/no/such.bin" in capsys.readouterr().err


# -- the progress indicator -------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_on_a_tty_or_when_asked_and_never_when_quiet():
    shown = argparse.Namespace(quiet=False, progress=False)
    tty = FakeTTY()
    with progress(shown, "vad", "files", 3, stream=tty) as bar:
        bar.update(2)
        bar.write("skseg vad: c.wav: file not found", file=tty)
        bar.update(1)
    text = tty.getvalue()
    assert "skseg vad: c.wav: file not found\n" in text
    assert text.rstrip("\n").split("\r")[-1].startswith("vad: 3/3 files [")

    log = io.StringIO()  # not a terminal: shown only with --progress
    with progress(shown, "vad", "files", 3, stream=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""
    asked = argparse.Namespace(quiet=False, progress=True)
    with progress(asked, "vad", "files", 3, stream=log) as bar:
        bar.update(3)
    assert log.getvalue().rstrip("\n").split("\r")[-1].startswith("vad: 3/3 files")

    quiet = FakeTTY()
    with progress(argparse.Namespace(quiet=True, progress=True), "vad", "files", 3,
                  stream=quiet) as bar:  # fmt: skip
        bar.update(3)
    assert quiet.getvalue() == ""


# -- registry-derived flags, presets, modes ---------------------------------------------
def test_every_runtime_parameter_has_a_flag():
    from skseg.cli import build_parser
    from skseg.pipelines.parameters import PARAMETERS, RUNTIME_PARAMETERS

    parser = build_parser()
    for command in ("vad", "osd", "segment", "resegment", "plot"):
        args = ["x.wav"] + (["--out", "f.png"] if command == "plot" else [])
        if command == "resegment":
            args += ["--baseline", "b.rttm"]
        for name in RUNTIME_PARAMETERS:
            flag = PARAMETERS[name].flag
            value = "fast" if name == "mode" else "1"
            parsed = parser.parse_args([command, *args, flag, value])
            assert getattr(parsed, name) not in (None, ""), (command, flag)


def test_mode_fast_on_the_command_line_equals_the_fast_estimator(files, tmp_path):
    out = tmp_path / "fast.rttm"
    assert main(["vad", str(files / "a.wav"), "--mode", "fast", "--rttm", str(out),
                 "--quiet"]) == 0  # fmt: skip
    expected = VADEstimator(mode="fast").predict([files / "a.wav"])
    assert sorted(out.read_text().splitlines()) == rttm_text(expected)
    assert rttm_text(expected) != rttm_text(VADEstimator().predict([files / "a.wav"]))


@pytest.mark.parametrize(
    "task, cls",
    [
        ("vad", VADEstimator),
        ("osd", OSDEstimator),
        ("resegment", ResegmentationEstimator),
    ],
)
def test_preset_on_the_command_line_equals_the_preset_estimator(
    task, cls, files, tmp_path, sample
):
    out = tmp_path / f"{task}.rttm"
    argv = [task, str(files / "a.wav"), "--preset", "voxconverse", "--rttm", str(out)]
    file = {"audio": str(files / "a.wav")}
    if task == "resegment":
        baseline = tmp_path / "baseline.rttm"
        turns = sample["annotation"].copy()
        turns.uri = "a"
        write_rttm([turns], baseline)
        argv += ["--baseline", str(baseline)]
        file["baseline"] = turns
    assert main([*argv, "--quiet"]) == 0
    estimator = cls.from_preset("voxconverse")
    assert estimator.onset == {"vad": 0.767, "osd": 0.587, "resegment": 0.537}[task]
    assert sorted(out.read_text().splitlines()) == rttm_text(estimator.predict([file]))


def test_a_preset_for_a_pipeline_the_card_has_no_row_for_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["segment", "x.wav", "--preset", "ami"])
    assert exit.value.code == 2
    assert "no model card preset for pipeline 'segment'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_bad_runtime_parameter_of_a_joblib_pipeline_is_one_usage_error(
    files, tmp_path
):
    joblib.dump(VADEstimator(onset=0.6).fit(), tmp_path / "vad.joblib")
    run = skseg(
        "vad", files / "a.wav", files / "b.wav", "--pipeline", tmp_path / "vad.joblib",
        "--device", "cuda", "--rttm", tmp_path / "out.rttm",
        env={"CUDA_VISIBLE_DEVICES": ""},  # a machine without CUDA, even on a GPU box
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    # one usage error, before any file: not one failure per file
    assert run.stderr.count("error:") == 1
    assert "'device' parameter of VADEstimator" in run.stderr
    assert "CUDA is not available" in run.stderr
