"""Round 3 of the hostile inputs: the command line's outputs, and ``skseg finetune``.

Outputs that are inputs (a list file, a grid, a reference), a failing output
device, ``--force`` over a folder holding a saved network among the user's own
files, a save interrupted at every step, and hostile data folders (link loops,
FIFOs, devices, absurd times, millions of lines, audio shorter than a chunk).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment

from skseg import load_model
from skseg.cli import main
from skseg.datasets import fetch_sample
from skseg.exceptions import FileError
from skseg.io import (
    MAX_ANNOTATION_BYTES,
    check_regular_file,
    load_folder,
    read_rttm,
    write_rttm,
)
from skseg.serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    is_saved_network,
    read_config,
    save_model,
)

from .hostile import peak_memory

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "-q"]
TRAIN += ["--validation-fraction", "0", "--threads", "1"]


def _wav(path, seconds=2.0):
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype("float32"), 16000)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two copies of pyannote's 30 s sample with their RTTM: a training folder."""
    folder = tmp_path_factory.mktemp("data")
    sample = fetch_sample()
    for uri in ("a", "b"):
        shutil.copy(sample["audio"], folder / f"{uri}.wav")
        annotation = sample["annotation"].rename_labels()
        annotation.uri = uri
        write_rttm(annotation, folder / f"{uri}.rttm")
    return folder


def _copy(folder, tmp_path, name="data"):
    return Path(shutil.copytree(folder, tmp_path / name))


def _usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# -- an output that is an input ---------------------------------------------------------


@pytest.mark.parametrize("command", ["vad", "osd", "segment"])
def test_the_list_file_given_as_input_is_never_the_output(tmp_path, capsys, command):
    _wav(tmp_path / "a.wav")
    listing = tmp_path / "files.txt"
    listing.write_text("a.wav\n")
    line = _usage_error(capsys, [command, str(listing), "--rttm", str(listing), "-q"])
    assert line.endswith(
        f"{listing}: is also an input; refusing to overwrite it; write the "
        "results elsewhere"
    )
    assert listing.read_text() == "a.wav\n"
    # a link to it is the same file
    (tmp_path / "link.rttm").symlink_to(listing)
    _usage_error(capsys, [command, str(listing), "--rttm", str(tmp_path / "link.rttm")])
    assert listing.read_text() == "a.wav\n"


def test_tune_refuses_an_out_that_is_one_of_its_inputs(data, tmp_path, capsys):
    folder = _copy(data, tmp_path)
    grid = tmp_path / "grid.json"
    grid.write_text('{"onset": [0.5]}')
    before = (folder / "a.rttm").read_bytes()
    run = ["tune", str(folder), "--pipeline", "vad", "-q"]
    line = _usage_error(capsys, [*run, "--out", str(folder / "a.rttm")])
    assert f"{folder / 'a.rttm'}: is also an input" in line
    assert (folder / "a.rttm").read_bytes() == before
    line = _usage_error(capsys, [*run, "--grid", str(grid), "--out", str(grid)])
    assert f"{grid}: is also an input" in line
    assert grid.read_text() == '{"onset": [0.5]}'


def test_plot_refuses_an_out_that_is_one_of_its_inputs(data, tmp_path, capsys):
    folder = _copy(data, tmp_path)
    reference = folder / "a.rttm"
    before = reference.read_bytes()
    argv = ["plot", str(folder / "a.wav"), "--reference", str(reference)]
    line = _usage_error(capsys, [*argv, "--out", str(reference), "-q"])
    assert f"{reference}: is also an input" in line
    assert reference.read_bytes() == before


def test_finetune_refuses_an_out_whose_files_are_its_inputs(data, tmp_path, capsys):
    folder = _copy(data, tmp_path)
    out = tmp_path / "net"
    save_model(load_model(), out)
    # the weights file of --out is a link to one of the training recordings
    (out / WEIGHTS_NAME).unlink()
    (out / WEIGHTS_NAME).symlink_to(folder / "a.wav")
    before = (folder / "a.wav").read_bytes()
    line = _usage_error(
        capsys, ["finetune", str(folder), "--out", str(out), "--force", *TRAIN]
    )
    assert f"{out / WEIGHTS_NAME}: is also the input {folder / 'a.wav'}" in line
    assert (folder / "a.wav").read_bytes() == before


# -- an output that fails ----------------------------------------------------------------


def test_a_failing_output_device_is_named_without_a_traceback(tmp_path, capsys):
    files = [str(_wav(tmp_path / f"{uri}.wav")) for uri in "ab"]
    status = main(["vad", *files, "--rttm", "/dev/full", "-q"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" not in err
    for file in files:
        assert (
            f"skseg vad: {file}: writing its result failed: /dev/full: No space left "
            "on device" in err
        )
    assert "2 of 2 files failed" in err


@pytest.mark.slow
def test_an_output_that_fills_up_keeps_the_whole_lines_written_before(data, tmp_path):
    # the file-size limit makes the disk "full" once the first file's turns are
    # written: the second file's write fails part-way and is cut back
    out = tmp_path / "all.rttm"
    code = f"""
        import resource, signal, sys
        from skseg.cli import main
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
        sys.exit(main(["vad", {str(data / "a.wav")!r}, {str(data / "b.wav")!r},
                       "--rttm", {str(out)!r}, "-q"]))
    """
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert f"{data / 'b.wav'}: writing its result failed: {out}: " in run.stderr
    text = out.read_text()
    assert text.endswith("\n") and len(text) <= 200
    assert list(read_rttm(out)) == ["a"]  # a's turns, whole; none of b's


@pytest.mark.slow
def test_a_tuned_estimator_is_written_atomically(data, tmp_path, capsys):
    folder = _copy(data, tmp_path)
    run = ["tune", str(folder), "--pipeline", "vad", "-q", "--grid"]
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"onset": [0.5], "offset": [0.5]}))
    line = _usage_error(capsys, [*run, str(grid), "--out", "/dev/full"])
    assert line.endswith("--out /dev/full: No space left on device")
    assert Path("/dev/full").is_char_device()  # written in place, not replaced


def test_atomic_writes_never_replace_a_fifo_or_a_device(tmp_path):
    fifo = tmp_path / "turns.rttm"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    annotation = Annotation(uri="a")
    annotation[Segment(0, 1)] = "SPEECH"
    write_rttm(annotation, fifo)
    reader.join(timeout=30)
    assert received == ["SPEAKER a 1 0.000 1.000 <NA> <NA> SPEECH <NA> <NA>\n"]
    assert fifo.is_fifo()  # renaming a temporary file over it would replace it


# -- skseg finetune --force ----------------------------------------------------------------


def _user_folder(tmp_path):
    """A folder of the user's that also holds a saved network."""
    folder = tmp_path / "project"
    save_model(load_model(), folder, provenance={"which": "old"})
    (folder / "notes.txt").write_text("mine")
    (folder / "results").mkdir()
    (folder / "results" / "table.csv").write_text("1,2\n")
    return folder


def _user_files_intact(folder):
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "results" / "table.csv").read_text() == "1,2\n"


def test_force_replaces_only_the_network_files(data, tmp_path, capsys):
    out = _user_folder(tmp_path)
    status = main(["finetune", str(data), "--out", str(out), "--force", *TRAIN])
    assert status == 0, capsys.readouterr().err
    _user_files_intact(out)
    assert read_config(out)["provenance"]["steps"] == 1  # the new network
    assert sorted(p.name for p in out.iterdir()) == [
        CONFIG_NAME,
        WEIGHTS_NAME,
        "notes.txt",
        "results",
    ]


def test_an_out_naming_a_network_file_is_refused_before_training(
    data, tmp_path, capsys
):
    out = tmp_path / "net"
    save_model(load_model(), out)
    weights = out / WEIGHTS_NAME
    argv = ["finetune", str(data), "--out", str(weights), "--force", *TRAIN]
    line = _usage_error(capsys, argv)
    assert line.endswith(f"--out {weights}: is a file, not a network folder")
    with pytest.raises(FileError, match="is a file, not a folder"):
        save_model(load_model(), weights, overwrite=True)
    assert is_saved_network(out)


class _Stop(BaseException):
    pass


@pytest.mark.parametrize("where", ["os.replace", "os.unlink", "os.fsync"])
def test_a_save_stopped_at_any_step_leaves_a_whole_network_or_none(
    tmp_path, monkeypatch, where
):
    model = load_model()
    module, name = where.split(".")
    real = getattr(os, name)
    for stop_at in range(1, 6):
        folder = _user_folder(tmp_path / f"{name}{stop_at}")
        calls = []

        def stopping(*args, real=real, stop_at=stop_at, calls=calls, **kwargs):
            calls.append(args)
            if len(calls) == stop_at:
                raise _Stop
            return real(*args, **kwargs)

        monkeypatch.setattr(os, name, stopping)
        try:
            save_model(model, folder, provenance={"which": "new"}, overwrite=True)
        except _Stop:
            pass
        finally:
            monkeypatch.setattr(os, name, real)
        _user_files_intact(folder)
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []
        if (folder / CONFIG_NAME).exists():  # a network: the old or the new, whole
            assert read_config(folder)["provenance"]["which"] in ("old", "new")
            load_model(folder)
        else:
            assert not is_saved_network(folder)


def test_a_second_ctrl_c_during_the_save_leaves_the_whole_network(
    data, tmp_path, monkeypatch, capsys
):
    from skseg.training import SegmentationTrainer

    fit = SegmentationTrainer.fit

    def interrupted_fit(self, X, y=None, *, validation=None, callback=None):
        def stop(progress):
            callback(progress)
            raise KeyboardInterrupt  # the first Ctrl-C, after one step

        return fit(self, X, y, validation=validation, callback=stop)

    replace = os.replace

    def replace_after_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, mid-save
        return replace(*args, **kwargs)

    out = _user_folder(tmp_path)
    monkeypatch.setattr(SegmentationTrainer, "fit", interrupted_fit)
    monkeypatch.setattr(os, "replace", replace_after_ctrl_c)
    status = main(["finetune", str(data), "--out", str(out), "--force", *TRAIN])
    monkeypatch.setattr(os, "replace", replace)
    err = capsys.readouterr().err
    assert status == 130, err
    assert "saving the network; it is written whole first" in err
    assert read_config(out)["provenance"]["stopped"] == "interrupted"
    load_model(out)
    _user_files_intact(out)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- hostile data folders ---------------------------------------------------------------


def _skseg(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "skseg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=timeout,
    )


def _plant(folder, kind):
    if kind == "rttm link loop":
        (folder / "loop.rttm").symlink_to("loop.rttm")
        return folder / "loop.rttm", "is a symbolic link loop, not a file"
    if kind == "audio link loop":
        (folder / "loop.wav").symlink_to("loop.wav")
        return folder / "loop.wav", "is a symbolic link loop, not a file"
    if kind == "dangling audio link":
        (folder / "gone.wav").symlink_to("nowhere.wav")
        return folder / "gone.wav", "is a dangling symbolic link"
    if kind == "FIFO":  # reading it would wait for a writer forever
        os.mkfifo(folder / "turns.rttm")
        return folder / "turns.rttm", "is a FIFO, not a regular file"
    (folder / "zeros.uem").symlink_to("/dev/zero")  # reading it never ends
    return folder / "zeros.uem", "is a device, not a regular file"


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    ["rttm link loop", "audio link loop", "dangling audio link", "FIFO", "device"],
)
def test_a_data_folder_with_links_fifos_or_devices_is_refused_at_once(
    data, tmp_path, kind
):
    folder = _copy(data, tmp_path)
    path, problem = _plant(folder, kind)
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..")  # a folder loop: never walked
    start = time.monotonic()
    run = _skseg("finetune", folder, "--out", tmp_path / "net", *TRAIN, timeout=60)
    assert time.monotonic() - start < 60
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"skseg finetune: error: {path}: {problem}"
    )
    assert not (tmp_path / "net").exists()
    with pytest.raises(FileError, match=problem):
        check_regular_file(path)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("SPEAKER a 1 1e300 1 <NA> <NA> s <NA> <NA>", "is beyond 1e+07 s"),
        ("SPEAKER a 1 -1 1 <NA> <NA> s <NA> <NA>", "negative start -1"),
        ("SPEAKER a 1 nan 1 <NA> <NA> s <NA> <NA>", "is not finite"),
        ("SPEAKER a 1 1 inf <NA> <NA> s <NA> <NA>", "is not finite"),
        ("SPEAKER a 1 5 -2 <NA> <NA> s <NA> <NA>", "negative duration -2"),
    ],
)
def test_absurd_times_in_the_data_are_refused_naming_file_and_line(
    data, tmp_path, capsys, line, problem
):
    folder = _copy(data, tmp_path)
    rttm = folder / "a.rttm"
    rttm.write_text(rttm.read_text() + line + "\n")
    n = len(rttm.read_text().splitlines())
    err = _usage_error(capsys, ["finetune", str(folder), "--out", "net", *TRAIN])
    assert err.startswith(f"skseg finetune: error: {rttm}: line {n}: ")
    assert problem in err
    assert not Path("net").exists()


@pytest.mark.slow
def test_millions_of_lines_are_refused_before_they_are_read(data, tmp_path):
    folder = _copy(data, tmp_path)
    line = b"SPEAKER a 1 0 1 <NA> <NA> s <NA> <NA>\n"
    (folder / "many.rttm").write_bytes(line * (MAX_ANNOTATION_BYTES // len(line) + 1))
    with open(folder / "sparse.uem", "wb") as f:
        f.truncate(8 * 2**30)  # 8 GiB that occupy no disk
    result = peak_memory(
        f"""
        import time
        from skseg.io import load_folder, read_uem
        from skseg.exceptions import FileError
        start = time.monotonic()
        for read, path in ((load_folder, {str(folder)!r}),
                           (read_uem, {str(folder / "sparse.uem")!r})):
            try:
                read(path)
            except FileError as e:
                result.setdefault("errors", []).append(str(e))
        result["seconds"] = time.monotonic() - start
        """
    )
    size = (folder / "many.rttm").stat().st_size
    limit = "more than MAX_ANNOTATION_BYTES (33,554,432): too large for an RTTM"
    assert result["errors"] == [
        f"{folder / 'many.rttm'}: {size:,} bytes, {limit}, UEM or list file",
        f"{folder / 'sparse.uem'}: 8,589,934,592 bytes, {limit}, UEM or list file",
    ]
    assert result["grown_mib"] < 64
    assert result["seconds"] < 5


def test_a_device_named_as_reference_is_read_within_the_limit(tmp_path, capsys):
    _wav(tmp_path / "a.wav")
    line = _usage_error(
        capsys, ["evaluate", "--reference", "/dev/zero", "--hypothesis", "/dev/zero"]
    )
    assert line.endswith(
        "--reference /dev/zero: more than MAX_ANNOTATION_BYTES (33,554,432): too "
        "large for an RTTM, UEM or list file"
    )


def test_audio_shorter_than_a_chunk_is_skipped_with_one_line(data, tmp_path, capsys):
    folder = _copy(data, tmp_path)
    sf.write(folder / "empty.wav", np.zeros(0, dtype="float32"), 16000)
    _wav(folder / "tiny.wav", seconds=0.5)
    _wav(folder / "late.wav", seconds=1.0)
    for uri in ("empty", "tiny", "late"):
        (folder / f"{uri}.rttm").write_text(
            f"SPEAKER {uri} 1 0.0 0.4 <NA> <NA> s1 <NA> <NA>\n"
        )
    (folder / "late.uem").write_text("late 1 50 100\n")  # after the audio's end
    out = tmp_path / "net"
    status = main(["finetune", str(folder), "--out", str(out), *TRAIN])
    err = capsys.readouterr().err
    assert status == 0, err
    lines = [line for line in err.splitlines() if "skipped" in line]
    assert lines == [
        f"skseg finetune: {folder / 'empty.wav'}: skipped, no 5 s chunk to draw: "
        "zero-length audio (0 samples)",
        f"skseg finetune: {folder / 'late.wav'}: skipped, no 5 s chunk to draw: its "
        "'annotated' region (50.000 to 100.000 s) lies outside the audio (0 to "
        "1.000 s): nothing to evaluate",
        f"skseg finetune: {folder / 'tiny.wav'}: skipped, no annotated region is as "
        "long as a 5 s chunk (longest 0.50 s)",
    ]
    assert read_config(out)["provenance"]["train_files"] == 2
    X, _ = load_folder(folder)
    assert len(X) == 5
