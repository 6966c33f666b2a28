"""RTTM/UEM reading and writing, audio folders and list files."""

import io
import shutil

import pytest
from pyannote.core import Annotation, Segment, Timeline

from skseg.exceptions import FileError
from skseg.io import (
    expand_inputs,
    load_folder,
    read_rttm,
    read_uem,
    write_rttm,
    write_uem,
)

from .helpers import segments


def test_rttm_round_trip_keeps_every_turn_to_the_millisecond(tmp_path, sample):
    path = tmp_path / "out.rttm"
    other = Annotation(uri="other")
    other[Segment(0.25, 1.5)] = "A"
    other[Segment(1.0, 2.0)] = "B"
    write_rttm({"sample": sample["annotation"], "other": other}, path)
    back = read_rttm(path)
    assert sorted(back) == ["other", "sample"]
    for uri, original in (("sample", sample["annotation"]), ("other", other)):
        got, want = segments(back[uri]), segments(original)
        assert [g[2] for g in got] == [w[2] for w in want]
        assert (
            max(
                abs(g[i] - w[i]) for g, w in zip(got, want, strict=True) for i in (0, 1)
            )
            <= 5e-4
        )


def test_rttm_ignores_comments_and_non_speaker_lines(tmp_path):
    path = tmp_path / "a.rttm"
    path.write_text(
        ";; a comment\n"
        "SPKR-INFO a 1 <NA> <NA> <NA> unknown x <NA> <NA>\n"
        "SPEAKER a 1 1.0 2.0 <NA> <NA> x <NA> <NA>\n\n"
    )
    assert segments(read_rttm(path)["a"]) == [(1.0, 3.0, "x")]
    empty = tmp_path / "empty.rttm"
    empty.write_text("")
    assert read_rttm(empty) == {}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("SPEAKER a 1 0.0\n", "line 2: an RTTM line has 9 or 10"),
        (
            "SPEAKER a 1 zero 1.0 <NA> <NA> x <NA> <NA>\n",
            "line 2: start 'zero' is not a number",
        ),
        ("SPEAKER a 1 0.0 -1 <NA> <NA> x <NA> <NA>\n", "line 2: negative duration"),
        (
            "SPEAKER a 1 0.0 nan <NA> <NA> x <NA> <NA>\n",
            "line 2: duration 'nan' is not finite",
        ),
    ],
)
def test_malformed_rttm_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER a 1 0.0 1.0 <NA> <NA> x <NA> <NA>\n" + line)
    with pytest.raises(FileError, match=problem) as info:
        read_rttm(path)
    assert info.value.file == str(path)


def test_rttm_read_errors(tmp_path):
    with pytest.raises(FileError, match="no such file"):
        read_rttm(tmp_path / "missing.rttm")
    with pytest.raises(FileError, match="is a directory"):
        read_rttm(tmp_path)
    binary = tmp_path / "bin.rttm"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(FileError, match="not a text file"):
        read_rttm(binary)


def test_uem_round_trip_and_errors(tmp_path):
    path = tmp_path / "a.uem"
    write_uem(
        {
            "a": Timeline([Segment(0, 1.5), Segment(2, 3.25)]),
            "b": Timeline([Segment(0, 9)]),
        },
        path,
    )
    assert path.read_text().splitlines() == [
        "a 1 0.000 1.500",
        "a 1 2.000 3.250",
        "b 1 0.000 9.000",
    ]
    back = read_uem(path)
    assert list(back["a"]) == [Segment(0, 1.5), Segment(2, 3.25)]
    path.write_text("a 1 0 1\na 1 5 4\n")
    with pytest.raises(FileError, match="line 2: region"):
        read_uem(path)
    path.write_text("a 1 0\n")
    with pytest.raises(FileError, match="line 1: a UEM line has 4 fields"):
        read_uem(path)


def test_write_rttm_needs_uris():
    with pytest.raises(ValueError, match="uri"):
        write_rttm([Annotation()], io.StringIO())


def test_load_folder(tmp_path, sample):
    shutil.copy(sample["audio"], tmp_path / "one.wav")
    shutil.copy(sample["audio"], tmp_path / "two.wav")
    renamed = {}
    for uri in ("one", "two"):
        annotation = sample["annotation"].copy()
        annotation.uri = uri
        renamed[uri] = annotation
    write_rttm(renamed["one"], tmp_path / "one.rttm")
    write_rttm(renamed["two"], tmp_path / "all.rttm")
    write_uem({"two": Timeline([Segment(0, 10), Segment(5, 20)])}, tmp_path / "x.uem")
    X, y = load_folder(tmp_path)
    assert [f["uri"] for f in X] == ["one", "two"]
    assert "annotated" not in X[0] and list(X[1]["annotated"]) == [Segment(0, 20)]
    assert y[0] is X[0]["annotation"] and len(y[1]) == len(sample["annotation"])

    shutil.copy(sample["audio"], tmp_path / "three.wav")
    with pytest.raises(FileError, match="no turns for uri 'three'") as info:
        load_folder(tmp_path)
    assert info.value.file.endswith("three.wav")
    X, y = load_folder(tmp_path, require_annotation=False)
    assert [len(a) for a in y] == [10, 0, 10]


def test_load_folder_errors(tmp_path):
    with pytest.raises(FileError, match="no such folder"):
        load_folder(tmp_path / "nope")
    with pytest.raises(FileError, match="no audio files"):
        load_folder(tmp_path)


def test_expand_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.wav", "a.FLAC", "c.txt.bak"):
        (tmp_path / "sub" / name).write_bytes(b"")
    listing = tmp_path / "files.lst"
    listing.write_text(f"sub/b.wav\n  # comment\n\n{tmp_path / 'abs.wav'}\n")
    out = expand_inputs([tmp_path / "sub", listing, "missing.wav"])
    assert out == [
        str(tmp_path / "sub" / "a.FLAC"),
        str(tmp_path / "sub" / "b.wav"),
        str(tmp_path / "sub" / "b.wav"),
        str(tmp_path / "abs.wav"),
        "missing.wav",
    ]
    # a missing list file is kept like a missing audio file: the batch names it
    assert expand_inputs([tmp_path / "gone.txt"]) == [str(tmp_path / "gone.txt")]
