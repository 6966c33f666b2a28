"""The synthetic conversation generator: exact references, determinism, disjoint splits."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from skseg.exceptions import SksegError
from skseg.io import load_folder, read_rttm, read_uem
from skseg.synthetic import (
    DEFAULT_ENGINES,
    EngineUnavailableError,
    Persona,
    espeak_library,
    generate_conversation,
    list_voices,
    make_corpus,
    split_personas,
    write_conversations,
)

SR = 16000
FRAME = SR // 100  # 10 ms


BOTH = ("espeak-ng", "flite")

# A stand-in for Flite's command with its command line (-lv, --version, -voice,
# --setf duration_stretch= and int_f0_target_mean=, -t, -o): each word a harmonic
# tone burst at the F0 asked for (rms ignores it, as the real voice does), as long
# as the duration stretch says, between silences. Flite is optional and no package
# index carries it, so its wrapper is tested against this, never against a system
# command. kal16 answers at 8 kHz, so that the resampling to 16 kHz is exercised.
FLITE = r"""
import math, struct, sys, wave
args = sys.argv[1:]
if args == ["-lv"]:
    print("Voices available: kal awb_time kal16 awb rms slt ")
    sys.exit(0)
if args == ["--version"]:
    print("  stand-in flite (tests/test_synthetic.py), version 2.2")
    sys.exit(0)
options = {"duration_stretch": 1.0, "int_f0_target_mean": 100.0}
voice = text = out = None
while args:
    flag, value, args = args[0], args[1], args[2:]
    if flag == "-voice":
        voice = value
    elif flag == "--setf":
        name, number = value.split("=")
        if name not in options:
            sys.exit("unknown feature " + name)
        options[name] = float(number)
    elif flag == "-t":
        text = value
    elif flag == "-o":
        out = value
    else:
        sys.exit("unknown option " + flag)
rates = {"awb": 16000, "rms": 16000, "slt": 16000, "kal16": 8000}
if voice not in rates or not text or not out:
    sys.exit("Error: voice " + str(voice) + " not found")
sr, stretch = rates[voice], options["duration_stretch"]
f0 = 99.0 if voice == "rms" else options["int_f0_target_mean"]
samples = [0.0] * int(0.05 * sr)
for word in text.split():
    n = int(0.18 * stretch * sr)
    for i in range(n):
        hann = math.sin(math.pi * i / n) ** 2
        t = i / sr
        tone = sum(math.sin(2 * math.pi * k * f0 * t) / k for k in (1, 2, 3))
        samples.append(0.3 * hann * tone)
    samples += [0.0] * int(0.05 * stretch * sr)
samples += [0.0] * int(0.1 * sr)
with wave.open(out, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sr)
    w.writeframes(b"".join(struct.pack("<h", int(32767 * x)) for x in samples))
"""


@pytest.fixture
def flite(tmp_path, monkeypatch):
    """The stand-in ``flite`` first on PATH; its folder."""
    folder = tmp_path / "flite-bin"
    folder.mkdir()
    (folder / "flite.py").write_text(FLITE)
    command = folder / "flite"
    command.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -I -S "{folder / "flite.py"}" "$@"\n'
    )
    command.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def dominant_frequency(wav):
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return np.fft.rfftfreq(len(wav), 1 / SR)[np.argmax(spectrum)]


@pytest.fixture(scope="module")
def splits():
    return split_personas(seed=0)


@pytest.fixture(scope="module")
def conversation(splits):
    pool = splits["train"]
    return generate_conversation(
        pool, duration=25.0, seed=7, n_speakers=3, overlap=0.2, backchannels=1.0
    )


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_espeak_ng_comes_from_the_wheel():
    voices = list_voices("espeak-ng")
    assert {"espeak-ng/m1", "espeak-ng/f1"} <= set(voices)
    library = espeak_library()
    # the wheel's library and data speak, never a system espeak-ng in /usr/lib
    assert Path(library.library_path).parent.name == "espeakng_loader"
    assert library.info[1] == library.data_path
    assert library.data_path.startswith(str(Path(library.library_path).parent))


def test_espeak_ng_text_sounds_the_same_whatever_came_before():
    p = Persona("espeak-ng", "m3", "en-gb", 40, 160)
    q = Persona("espeak-ng", "klatt", "de", 60, 180)
    first = p.synthesize("Did he clean the washing machine last week?")
    q.synthesize("Es hat den ganzen Tag geregnet.")
    assert np.array_equal(
        p.synthesize("Did he clean the washing machine last week?"), first
    )


def test_the_default_engines_come_from_the_package_index():
    # what a `pip install "skseg[synthetic]"` brings, nothing from the system
    assert DEFAULT_ENGINES == ("espeak-ng",)
    assert list_voices() == list_voices("espeak-ng")
    assert len(list_voices()) >= 60  # variety from espeak-ng's own timbres


def test_flite_voices_are_those_its_command_lists(flite):
    voices = list_voices(BOTH)
    flite_voices = ["flite/awb", "flite/kal16", "flite/rms", "flite/slt"]
    # the 16 kHz voices this module knows, in its order; others listed are left out
    assert voices == list_voices("espeak-ng") + flite_voices


@pytest.mark.parametrize(
    "persona",
    [
        Persona("espeak-ng", "m3", "en-us", 40, 160),
        Persona("espeak-ng", "f2", "de", 60, 180),
        Persona("flite", "slt", "en", 1.1, 0.9),
        Persona("flite", "kal16", "en", 0.9, 1.1),
    ],
    ids=lambda p: p.label,
)
def test_each_engine_speaks_at_16_khz(persona, request):
    if persona.engine == "flite":
        request.getfixturevalue("flite")
    wav = persona.synthesize("The library books are due on Friday.")
    assert wav.ndim == 1 and wav.dtype == np.float64
    assert 1.0 < len(wav) / SR < 5.0
    assert np.abs(wav).max() > 0.05


def test_pitch_and_speed_change_the_voice():
    slow = Persona("espeak-ng", "m3", "en-us", 50, 130).synthesize("one two three four")
    fast = Persona("espeak-ng", "m3", "en-us", 50, 190).synthesize("one two three four")
    assert len(slow) > 1.2 * len(fast)


def test_flite_pitch_and_speed_reach_its_command(flite):
    # pitch scales the voice's own mean F0 (slt: 167 Hz), speed the durations
    low = Persona("flite", "slt", "en", 0.85, 1.0).synthesize("hello")
    high = Persona("flite", "slt", "en", 1.2, 1.0).synthesize("hello")
    assert dominant_frequency(low) == pytest.approx(167.0 * 0.85, abs=6.0)
    assert dominant_frequency(high) == pytest.approx(167.0 * 1.2, abs=6.0)
    slow = Persona("flite", "awb", "en", 1.0, 1.15).synthesize("one two three four")
    fast = Persona("flite", "awb", "en", 1.0, 0.85).synthesize("one two three four")
    assert len(slow) > 1.2 * len(fast)


def test_a_failing_flite_is_named_with_its_message(flite):
    with pytest.raises(
        SksegError,
        match=r"flite failed for persona flite_nope.*"
        r"\(exit 1\): Error: voice nope not found",
    ):
        Persona("flite", "nope", "en", 1.0, 1.0).synthesize("hello")


def test_a_corpus_with_flite_voices(flite, tmp_path):
    folders = make_corpus(
        tmp_path, 1, 0, 1, duration=6.0, seed=0, engines=BOTH, n_speakers=3
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (
        manifest["engines"]["flite"] == "stand-in flite "
        "(tests/test_synthetic.py), version 2.2"
    )
    for split in ("train", "test"):
        engines = {p["engine"] for p in manifest["personas"][split]}
        assert engines == {"espeak-ng", "flite"}
    X, y = load_folder(folders["test"])
    assert y[0].labels() and X[0]["annotated"].duration() == 6.0


def check_splits(splits, engines):
    voices = {s: {p.voice_id for p in splits[s]} for s in splits}
    labels = {s: {p.label for p in splits[s]} for s in splits}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert voices[a].isdisjoint(voices[b]), (a, b)
        assert labels[a].isdisjoint(labels[b]), (a, b)
    for split in splits:  # every split hears every engine
        assert {p.engine for p in splits[split]} == set(engines)
    # every installed voice is used exactly once
    assert sum(len(v) for v in voices.values()) == len(list_voices(engines))


def test_splits_share_no_voice_and_no_speaker(splits):
    check_splits(splits, DEFAULT_ENGINES)


def test_splits_with_flite_share_no_voice_and_no_speaker(flite):
    check_splits(split_personas(seed=0, engines=BOTH), BOTH)


def test_split_depends_on_the_seed_only(splits):
    assert split_personas(seed=0) == splits
    assert split_personas(seed=1) != splits


def test_reference_is_exactly_where_each_clean_source_sounds(conversation):
    annotation, sources = conversation["annotation"], conversation["sources"]
    assert sorted(annotation.labels()) == sorted(sources)
    n = conversation["waveform"].shape[1]
    for label, source in sources.items():
        assert source.shape == (n,)
        peak = np.abs(source).max()
        inside = np.zeros(n, dtype=bool)
        segments = list(annotation.label_timeline(label))
        assert segments
        for segment in segments:
            a, b = round(segment.start * SR), round(segment.end * SR)
            inside[a:b] = True
            # a turn starts and ends on sound, not in silence: within one frame
            assert np.abs(source[a : a + FRAME]).max() > peak * 1e-3, (label, segment)
            assert np.abs(source[b - FRAME : b]).max() > peak * 1e-3, (label, segment)
        # outside its turns a speaker is 40 dB below its loudest, or silent
        assert np.abs(source[~inside]).max(initial=0) <= peak * 10 ** (-40 / 20)
        # silences inside a turn are shorter than min_pause (0.3 s) ...
        # ... and between two turns of one speaker, at least min_pause
        starts = [s.start for s in segments]
        ends = [s.end for s in segments]
        assert all(
            b - a >= 0.3 - 1e-9 for a, b in zip(ends[:-1], starts[1:], strict=True)
        )


@pytest.mark.slow
def test_overlap_ratio_is_steered(splits):
    none = generate_conversation(
        splits["train"], 40.0, seed=3, n_speakers=3, overlap=0.0, backchannels=0.0
    )
    assert none["annotation"].get_overlap().duration() == 0.0
    assert none["metadata"]["overlap"] == 0.0
    for target in (0.1, 0.25):
        achieved = [
            generate_conversation(
                splits["train"], 40.0, seed=s, n_speakers=3, overlap=target
            )["metadata"]["overlap"]
            for s in range(3)
        ]
        assert abs(np.mean(achieved) - target) < 0.07, (target, achieved)


def test_draws_cover_noise_band_and_backchannels(conversation, splits):
    meta = conversation["metadata"]
    assert meta["backchannels"] >= 1
    assert len(meta["speakers"]) == 3
    seen = {"noise": set(), "band": set(), "snr": set()}
    for seed in range(12):
        m = generate_conversation(splits["val"], 6.0, seed=seed, n_speakers=2)
        for key in seen:
            seen[key].add(m["metadata"][key])
    assert seen["band"] == {"full", "telephone"}
    assert seen["snr"] == {None, 20.0, 10.0, 5.0}
    assert {"white", "pink", "brown", "babble"} & seen["noise"]


def test_snr_is_what_was_asked(splits):
    kwargs = dict(duration=15.0, n_speakers=2, band=["full"], seed=4)
    clean = generate_conversation(splits["test"], snr=[None], **kwargs)
    noisy = generate_conversation(splits["test"], snr=[5.0], noise=["white"], **kwargs)
    # the same draws up to the noise: same speech, same reference
    assert clean["annotation"] == noisy["annotation"]
    speech = np.zeros(clean["waveform"].shape[1], dtype=bool)
    for segment in clean["annotation"].get_timeline().support():
        speech[round(segment.start * SR) : round(segment.end * SR)] = True
    # the channel's draws do not depend on the noise drawn
    for key in ("level_changes", "band", "peak_dbfs", "speakers"):
        assert clean["metadata"][key] == noisy["metadata"][key], key
    assert clean["metadata"]["level_changes"]  # this seed has some to undo
    # the SNR is set as speech and noise are mixed, before the level changes, which
    # scale both alike: undo them (away from their 50 ms ramps) before measuring
    n = len(speech)
    gain, kept = np.ones(n), np.ones(n, dtype=bool)
    for at, step_db in clean["metadata"]["level_changes"]:
        gain[round(at * SR) :] *= 10 ** (step_db / 20)
        kept[max(round(at * SR) - SR // 20, 0) : round(at * SR) + SR // 20] = False
    speech &= kept
    # undo each file's own peak level
    c = clean["waveform"][0].astype(np.float64) / gain
    x = noisy["waveform"][0].astype(np.float64) / gain
    ratio = np.sum(x[speech] * c[speech]) / np.sum(c[speech] ** 2)
    noise = x / ratio - c
    snr = 10 * np.log10(np.mean(c[speech] ** 2) / np.mean(noise[kept] ** 2))
    assert abs(snr - 5.0) < 0.5


@pytest.mark.slow
def test_same_seed_gives_identical_bytes(tmp_path):
    a = make_corpus(tmp_path / "a", 2, 1, 1, duration=6.0, seed=5)
    b = make_corpus(tmp_path / "b", 2, 1, 1, duration=6.0, seed=5)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    c = make_corpus(tmp_path / "c", 2, 1, 1, duration=6.0, seed=6)
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert sorted(a) == sorted(b) == sorted(c) == ["test", "train", "val"]
    # more files do not change the first ones
    make_corpus(tmp_path / "d", 3, 1, 1, duration=6.0, seed=5)
    for name in ("train-0000.wav", "train-0001.wav", "train-0001.rttm"):
        first = (tmp_path / "a" / "train" / name).read_bytes()
        assert first == (tmp_path / "d" / "train" / name).read_bytes()


def test_corpus_folders_load_as_datasets(tmp_path):
    folders = make_corpus(tmp_path, 2, 1, 2, duration=8.0, seed=0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    speakers = {}
    for split, folder in folders.items():
        X, y = load_folder(folder)
        assert len(X) == manifest["counts"][split]
        speakers[split] = set().union(*(a.labels() for a in y))
        for file, meta in zip(X, manifest["files"][split], strict=True):
            assert file["uri"] == meta["uri"]
            assert file["annotated"].duration() == 8.0
            data, sr = sf.read(file["audio"])
            assert sr == SR and data.shape == (8 * SR,)
            assert set(file["annotation"].labels()) == set(meta["speakers"])
        rttm = read_rttm(folder / f"{X[0]['uri']}.rttm")
        assert list(rttm) == [X[0]["uri"]]
        assert list(read_uem(folder / f"{X[0]['uri']}.uem")) == [X[0]["uri"]]
    assert speakers["train"].isdisjoint(speakers["test"])
    assert speakers["val"].isdisjoint(speakers["test"])


def test_written_rttm_matches_the_in_memory_reference(tmp_path, splits):
    meta = write_conversations(tmp_path, splits["val"], 1, 10.0, seed=2)
    file = generate_conversation(splits["val"], 10.0, seed=2 * 100003, uri="conv-0000")
    assert meta[0] == file["metadata"]
    # an RTTM line holds a turn's start and duration, each to the millisecond (its
    # end, their sum, is within 1 ms): each field within half a millisecond
    back = read_rttm(tmp_path / "conv-0000.rttm")["conv-0000"]
    got = sorted(
        (s.start, s.duration, k) for s, _, k in back.itertracks(yield_label=True)
    )
    want = sorted(
        (s.start, s.duration, k)
        for s, _, k in file["annotation"].itertracks(yield_label=True)
    )
    assert [g[2] for g in got] == [w[2] for w in want]
    assert (
        max(abs(g[i] - w[i]) for g, w in zip(got, want, strict=True) for i in (0, 1))
        <= 5e-4 + 1e-9
    )


def test_existing_corpus_is_not_overwritten_unless_asked(tmp_path):
    make_corpus(tmp_path, 1, 0, 0, duration=5.0, seed=0)
    with pytest.raises(ValueError, match="exists and is not empty.*overwrite"):
        make_corpus(tmp_path, 1, 0, 0, duration=5.0, seed=1)
    make_corpus(tmp_path, 0, 0, 1, duration=5.0, seed=1, overwrite=True)
    # no split is left over from the corpus replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "test"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_train=-1), "n_train must be >= 0"),
        (dict(n_train=0, n_val=0, n_test=0), "nothing to generate"),
        (dict(n_train=1.5), "n_train must be an integer"),
        (dict(duration=1.0), "duration must be between 5 and 3600"),
        (dict(duration="long"), "duration must be a number"),
        (dict(seed=-3), "seed must be >= 0"),
        (dict(engines=["festival"]), "unknown engine 'festival'"),
        (dict(engines=[]), "engines is empty"),
        (dict(overlap=0.9), r"overlap must be a fraction of speech time in \[0, 0.5\]"),
        (dict(noise=["rain"]), "noise: unknown value 'rain'"),
        (dict(band=["radio"]), "band: unknown value 'radio'"),
        (dict(snr=[100.0]), "snr: 100.0 is not None or a dB value"),
        (dict(n_speakers=0), "n_speakers must be an integer >= 1"),
        (dict(n_speakers=(3, 2)), "n_speakers must be"),
        (dict(min_pause=0.0), "min_pause must be in"),
        (dict(backchannels=2), r"backchannels must be a probability in \[0, 1\]"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    args = dict(n_train=1, n_val=0, n_test=0, duration=5.0) | kwargs
    with pytest.raises(ValueError, match=message):
        make_corpus(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_bad_personas_and_options():
    with pytest.raises(ValueError, match="non-empty sequence of Persona"):
        generate_conversation([], 10.0)
    with pytest.raises(ValueError, match="non-empty sequence of Persona"):
        generate_conversation(["m3"], 10.0)
    p = Persona("espeak-ng", "m3", "en-us", 50, 170)
    with pytest.raises(ValueError, match="duplicates"):
        generate_conversation([p, p], 10.0)
    with pytest.raises(ValueError, match="uri must be"):
        generate_conversation([p], 10.0, uri="a b")
    with pytest.raises(TypeError, match="unknown options.*'snrs'"):
        write_conversations("unused", [p], 1, snrs=[5.0])
    with pytest.raises(ValueError, match="fractions must be 3"):
        split_personas(0, fractions=(1.0, 0.0))
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        p.synthesize("  ")


def test_missing_engine_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no engine on PATH
    with pytest.raises(EngineUnavailableError, match="'flite'.*apt-get install flite"):
        make_corpus(tmp_path / "out", 1, 0, 0, duration=5.0, engines=["flite"])
    assert not (tmp_path / "out").exists()
    # without the wheel, the message names the extra that brings it
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    espeak_library.cache_clear()
    try:
        with pytest.raises(EngineUnavailableError, match=r"skseg\[synthetic\]"):
            Persona("espeak-ng", "m3", "en-us", 50, 170).synthesize("hello")
        with pytest.raises(EngineUnavailableError, match="espeak-ng"):
            list_voices()
    finally:
        espeak_library.cache_clear()


@pytest.mark.slow
def test_command_line_writes_a_corpus(tmp_path):
    args = ["--train", "1", "--val", "0", "--test", "1", "--duration", "5"]
    run = [sys.executable, "-m", "skseg.synthetic", str(tmp_path / "c"), *args]
    out = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "train:" in out.stdout and "test:" in out.stdout
    assert (tmp_path / "c" / "test" / "test-0000.wav").exists()
    bad = subprocess.run(run[:-2] + ["--duration", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "duration must be between 5 and 3600" in bad.stderr
