"""RTTM/UEM injection, value checks, atomic writes and per-file write failures."""

import io
import os
import re

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from skseg.annotation import export
from skseg.annotation.labelstudio import from_labelstudio
from skseg.batch import deliver, predict_many
from skseg.cli import main
from skseg.exceptions import FileError
from skseg.io import (
    MAX_SECONDS,
    atomic_write,
    check_field,
    check_not_inputs,
    read_rttm,
    read_uem,
    write_rttm,
    write_uem,
)


def turn(uri, start, end, label="SPEECH"):
    annotation = Annotation(uri=uri)
    annotation[Segment(start, end)] = label
    return annotation


# -- what a field can hold ---------------------------------------------------------------

_FORGED = [
    "x\tSPEAKER victim 1 0 999",  # a tab: more fields
    "x\nSPEAKER victim 1 0 999 <NA> <NA> evil <NA> <NA>",  # a newline: another line
    "my call",  # a space
    "x\x00y",  # a control character
    "x\u2028y",  # a Unicode line separator
]


@pytest.mark.parametrize("uri", _FORGED)
def test_uris_that_would_forge_rttm_lines_are_refused(tmp_path, uri):
    path = tmp_path / "out.rttm"
    path.write_text("previous\n")
    with pytest.raises(FileError, match="cannot be written to RTTM/UEM") as e:
        write_rttm({uri: turn(uri, 0, 1)}, path)
    assert e.value.file == str(path)
    assert path.read_text() == "previous\n"  # nothing written
    with pytest.raises(FileError, match="cannot be written to RTTM/UEM"):
        write_uem({uri: Timeline([Segment(0, 1)])}, path)
    assert path.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["out.rttm"]  # no temporary file left


@pytest.mark.parametrize("label", ["Speaker 1", "a\nb", "a\tb"])
def test_labels_that_would_break_rttm_are_refused(label):
    with pytest.raises(
        FileError, match=re.escape(f"label {label!r} cannot be written")
    ):
        write_rttm(turn("call", 0, 1, label), io.StringIO())


@pytest.mark.parametrize(
    "name", ['say"hi"', "NA", "null", "nan", "None", "<NA>", "#N/A"]
)
def test_names_the_parser_would_not_read_back_are_refused(tmp_path, name):
    # pandas (pyannote.database's parser) reads '"' as a quote, and these names
    # as missing values: written, they would not read back
    with pytest.raises(FileError, match="the parser reads"):
        write_rttm(turn("call", 0, 1, name), io.StringIO())
    with pytest.raises(FileError, match="the parser reads"):
        write_uem({name: Timeline([Segment(0, 1)])}, io.StringIO())


@pytest.mark.parametrize(
    "line, problem",
    [
        (
            "SPEAKER NA 1 0 1 <NA> <NA> x <NA> <NA>\n",
            "line 2: uri 'NA' would be read as a missing",
        ),
        (
            "SPEAKER a 1 0 1 <NA> <NA> null <NA> <NA>\n",
            "line 2: speaker 'null' would be read",
        ),
        ('SPEAKER a 1 0 1 <NA> <NA> "x <NA> <NA>\n', "line 2: holds a '\"'"),
    ],
)
def test_rttm_names_the_parser_would_misread_are_refused(tmp_path, line, problem):
    path = tmp_path / "a.rttm"
    path.write_text("SPEAKER a 1 0.0 1.0 <NA> <NA> x <NA> <NA>\n" + line)
    with pytest.raises(FileError, match=problem):
        read_rttm(path)
    uem = tmp_path / "a.uem"
    uem.write_text("a 1 0 1\nnull 1 0 2\n")
    with pytest.raises(FileError, match="line 2: uri 'null' would be read"):
        read_uem(uem)


def test_an_empty_uem_uri_is_refused():
    with pytest.raises(FileError, match="an empty uri cannot be written"):
        write_uem({"": Timeline([Segment(0, 1)])}, io.StringIO())


def test_a_uem_uri_may_not_look_like_a_comment():
    with pytest.raises(FileError, match="';' is a comment"):
        write_uem({";x": Timeline([Segment(0, 1)])}, io.StringIO())


def test_check_field_accepts_ordinary_names():
    for name in ("call-7", "speaker#1", "SPEECH", "élan_ü", "a.b,c"):
        assert check_field(name) == name


@pytest.mark.parametrize("segment", [(0, float("inf")), (-1, 2), (0, 2 * MAX_SECONDS)])
def test_writers_refuse_times_their_readers_would_refuse(segment):
    timeline = Timeline([Segment(*segment)], uri="a")
    with pytest.raises(FileError, match="is not finite, non-negative"):
        write_uem({"a": timeline}, io.StringIO())


# -- readers: every value checked, with its line ----------------------------------------------


@pytest.mark.parametrize(
    "line, problem",
    [
        ("SPEAKER a 1 0.0 1.0 <NA> <NA> x\n", "line 2: an RTTM line has 9 or 10"),
        (
            "SPEAKER a 1 0 1 <NA> <NA> x <NA> <NA> y\n",
            "line 2: an RTTM line has 9 or 10",
        ),
        ("SPEAKER a 1 -5 1.0 <NA> <NA> x <NA> <NA>\n", "line 2: negative start -5"),
        (
            "SPEAKER a 1 1e300 1.0 <NA> <NA> x <NA> <NA>\n",
            "line 2: start '1e300' is beyond",
        ),
        (
            "SPEAKER a 1 1_000 1.0 <NA> <NA> x <NA> <NA>\n",
            "line 2: start '1_000' is not a number",
        ),
        (
            "SPEAKER a 1 0x10 1.0 <NA> <NA> x <NA> <NA>\n",
            "line 2: start '0x10' is not a number",
        ),
        (
            "SPEAKER a 1 0 inf <NA> <NA> x <NA> <NA>\n",
            "line 2: duration 'inf' is not finite",
        ),
        (
            "SPEAKER a 1 9999999 5 <NA> <NA> x <NA> <NA>\n",
            "line 2: the turn ends beyond",
        ),
        (
            "SPEAKER a\x1b 1 0 1 <NA> <NA> x <NA> <NA>\n",
            "line 2: holds the control character",
        ),
    ],
)
def test_rttm_values_are_checked_per_line(tmp_path, line, problem):
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER a 1 0.0 1.0 <NA> <NA> x <NA> <NA>\n" + line)
    with pytest.raises(FileError, match=problem) as info:
        read_rttm(path)
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("a 1 1_0 20\n", "line 2: start '1_0' is not a number"),
        ("a 1 0 1e300\n", "line 2: end '1e300' is beyond"),
        ("a 1 nan 2\n", "line 2: start 'nan' is not finite"),
        ("a\x07 1 0 2\n", "line 2: holds the control character"),
    ],
)
def test_uem_values_are_checked_per_line(tmp_path, line, problem):
    path = tmp_path / "bad.uem"
    path.write_text("a 1 0 1\n" + line)
    with pytest.raises(FileError, match=problem) as info:
        read_uem(path)
    assert info.value.file == str(path)


def test_what_the_writers_write_the_readers_read(tmp_path):
    annotation = turn("call-1", 0.5, 2.25, "speaker#1")
    write_rttm(annotation, tmp_path / "a.rttm")
    write_uem({"call-1": Timeline([Segment(0, 12.5)])}, tmp_path / "a.uem")
    assert read_rttm(tmp_path / "a.rttm")["call-1"].labels() == ["speaker#1"]
    assert read_uem(tmp_path / "a.uem")["call-1"].extent() == Segment(0, 12.5)


# -- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "a.rttm"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["a.rttm"]


def test_atomic_write_errors_name_the_file(tmp_path):
    with pytest.raises(FileError, match="is a directory") as e:
        with atomic_write(tmp_path):
            pass
    assert e.value.file == str(tmp_path)
    with pytest.raises(FileError, match="No such file") as e:
        with atomic_write(tmp_path / "missing" / "a.rttm"):
            pass
    assert e.value.file == str(tmp_path / "missing" / "a.rttm")


def test_atomic_write_keeps_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.rttm") as handle:
            handle.write("x\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.rttm").stat().st_mode & 0o777 == 0o644


# -- export: checked before writing, both files or neither ------------------------------------


def _task(uri, label="SPEECH", end=10.0):
    return {
        "answer": "accept",
        "meta": {"uri": uri, "start": 0.0, "end": end},
        "audio_spans": [{"start": 1.0, "end": 2.0, "label": label}],
    }


def test_export_leaves_out_examples_rttm_cannot_hold(tmp_path):
    examples = [
        _task("good"),
        _task("evil\nSPEAKER victim"),
        _task("labelled", label="Speaker\t1"),
        _task("endless", end=float("inf")),
    ]
    result = export(examples, tmp_path / "a.rttm", tmp_path / "a.uem")
    assert sorted(result.annotations) == ["good"]
    assert len(result.failures) == 3
    assert "uri 'evil\\nSPEAKER victim' cannot be written" in result.failures[0]
    assert "label 'Speaker\\t1' cannot be written" in result.failures[1]
    assert "is not finite" in result.failures[2]
    assert list(read_rttm(tmp_path / "a.rttm")) == ["good"]
    assert list(read_uem(tmp_path / "a.uem")) == ["good"]


def test_labelstudio_labels_with_newlines_cannot_forge_turns(tmp_path):
    region = {
        "from_name": "label",
        "to_name": "audio",
        "type": "labels",
        "value": {"start": 1.0, "end": 2.0, "labels": ["x\nSPEAKER victim 1 0 999"]},
    }
    ok = {
        "from_name": "label",
        "to_name": "audio",
        "type": "labels",
        "value": {"start": 1.0, "end": 2.0, "labels": ["SPEECH"]},
    }
    exported = [
        {
            "id": i,
            "data": {"audio": "a.wav", "uri": uri, "start": 0.0, "end": 5.0},
            "annotations": [{"result": [result]}],
        }
        for i, (uri, result) in enumerate([("a", region), ("b", ok)])
    ]
    result = export(from_labelstudio(exported), tmp_path / "x.rttm")
    assert list(read_rttm(tmp_path / "x.rttm")) == ["b"]
    assert len(result.failures) == 1 and "cannot be written" in result.failures[0]


def test_export_writes_neither_file_when_one_cannot_be_written(tmp_path):
    rttm = tmp_path / "a.rttm"
    rttm.write_text("previous\n")
    uem = tmp_path / "missing" / "a.uem"
    with pytest.raises(FileError, match="No such file") as e:
        export([_task("good")], rttm, uem)
    assert e.value.file == str(uem)
    assert rttm.read_text() == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["a.rttm"]


# -- batches: a failed write fails that file alone ---------------------------------------------


class Echo:
    """An "estimator" whose output for a file is its uri."""

    def predict(self, X):
        return [file["uri"] if isinstance(file, dict) else str(file) for file in X]


def test_a_failing_write_fails_its_file_and_the_batch_goes_on():
    written, errors = [], []

    def write(index, file, output):
        if output == "b":
            raise OSError(28, "No space left on device")
        if output == "c":
            raise FileError("out/c.rttm", "is a directory, not a file to write")
        written.append(output)

    files = [{"uri": u, "waveform": None, "sample_rate": 1} for u in "abcd"]
    result = predict_many(
        Echo(),
        files,
        errors="collect",
        on_result=write,
        on_error=lambda i, f, failure: errors.append(str(failure)),
    )
    assert written == ["a", "d"]
    assert result.outputs == ["a", None, None, "d"]
    assert errors == [
        "b: writing its result failed: No space left on device",
        "c: writing its result failed: out/c.rttm: is a directory, not a file to write",
    ]
    assert [f.index for f in result.failures] == [1, 2]


def test_deliver_with_raise_reports_the_file():
    def write(index, file, output):
        raise OSError(5, "Input/output error")

    failure = deliver(write, 0, "a.wav", "x")
    assert isinstance(failure.error, FileError)
    assert str(failure) == "a.wav: writing its result failed: Input/output error"
    with pytest.raises(FileError, match="^a.wav: writing its result failed"):
        predict_many(Echo(), ["a.wav"], on_result=write)


# -- outputs that are inputs ----------------------------------------------------------------------


def test_check_not_inputs_sees_links(tmp_path):
    audio = tmp_path / "keep.wav"
    audio.write_bytes(b"RIFF")
    os.link(audio, tmp_path / "hard.wav")
    os.symlink(audio, tmp_path / "soft.rttm")
    for output in (
        audio,
        tmp_path / "hard.wav",
        tmp_path / "soft.rttm",
        tmp_path / "." / "keep.wav",
    ):
        with pytest.raises(FileError, match="refusing to overwrite"):
            check_not_inputs([output], [audio])
    check_not_inputs([tmp_path / "new.rttm"], [audio])


def _wav(path, seconds=2.0):
    t = np.arange(int(16000 * seconds)) / 16000
    wav = (0.1 * np.sin(2 * np.pi * 220 * t)).astype("float32")
    sf.write(path, wav, 16000, format="WAV")
    return path


def test_cli_refuses_to_overwrite_its_input(tmp_path, capsys):
    audio = _wav(tmp_path / "keep.wav")
    before = audio.read_bytes()
    with pytest.raises(SystemExit) as e:
        main(["vad", str(audio), "--rttm", str(audio), "--quiet"])
    assert e.value.code == 2
    assert f"{audio}: is also an input" in capsys.readouterr().err
    assert audio.read_bytes() == before


def test_cli_refuses_an_out_dir_that_would_overwrite_an_input(tmp_path, capsys):
    # a list file naming "keep.rttm" as audio: --out would write keep.rttm over it
    audio = _wav(tmp_path / "keep.rttm")
    before = audio.read_bytes()
    listing = tmp_path / "files.txt"
    listing.write_text("keep.rttm\n")
    with pytest.raises(SystemExit) as e:
        main(["vad", str(listing), "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    assert "is also an input" in capsys.readouterr().err
    assert audio.read_bytes() == before


def test_cli_write_failures_fail_their_file_and_the_others_are_written(
    tmp_path, capsys
):
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in ("a", "b\tSPEAKER", "c"):
        _wav(folder / f"{name}.wav")
    out = tmp_path / "out"
    (out / "c.rttm").mkdir(parents=True)  # a directory where c's RTTM would go
    status = main(["vad", str(folder), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "2 of 3 files failed" in err
    assert f"{folder / 'b'}\tSPEAKER.wav: writing its result failed" in err
    assert f"{folder / 'c.wav'}: writing its result failed: {out / 'c.rttm'}" in err
    assert sorted(os.listdir(out)) == ["a.rttm", "c.rttm"]
    assert list(read_rttm(out / "a.rttm")) in (["a"], [])


def test_cli_single_rttm_keeps_the_other_files_turns(tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in ("a", "b c"):
        _wav(folder / f"{name}.wav")
    rttm = tmp_path / "all.rttm"
    status = main(["vad", str(folder), "--rttm", str(rttm), "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "uri 'b c' cannot be written to RTTM/UEM" in err
    read_rttm(rttm)  # what was written reads back: no forged or broken line
    assert "b c" not in rttm.read_text()


def test_file_time_spans_are_checked_against_their_region(tmp_path):
    # saved through before_db (file time): a span outside its task is left out
    outside = {
        "answer": "accept",
        "spans_time": "file",
        "meta": {"uri": "a", "start": 10.0, "end": 20.0},
        "audio_spans": [{"start": 50.0, "end": 999.0, "label": "SPEECH"}],
    }
    inside = dict(outside, meta={"uri": "b", "start": 10.0, "end": 20.0})
    inside["audio_spans"] = [{"start": 11.0, "end": 12.0, "label": "SPEECH"}]
    result = export([outside, inside], tmp_path / "a.rttm", tmp_path / "a.uem")
    assert sorted(result.annotations) == ["b"]
    assert (
        len(result.failures) == 1 and "ends after the task's end" in result.failures[0]
    )
    assert list(read_rttm(tmp_path / "a.rttm")) == ["b"]
