"""``skseg finetune``: train, save, use from every command, and every way it stops.

A generated corpus of two 12 s training files and one validation file, a few
steps of batch 2 per run: seconds each, on CPU.
"""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from skseg import VADEstimator, load_model
from skseg.cache import get_cache
from skseg.cli import COMMANDS, build_parser, main
from skseg.io import load_folder, write_rttm
from skseg.serialization import read_config, save_model
from skseg.synthetic import make_corpus
from skseg.training import SegmentationTrainer, TrainingError

# the fast tier (make test-fast) leaves this module out: it fine-tunes the network through the command line
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), 2, 1, 1, duration=12.0)


def _skseg(*args):
    """Run ``python -m skseg`` from the repository, as a fresh clone does."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "skseg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )


def _rttm(annotation):
    text = io.StringIO()
    write_rttm(annotation, text)
    return text.getvalue()


#: a valid command line of every command that runs the network
NETWORK_COMMANDS = [
    ["vad", "a.wav"],
    ["osd", "a.wav"],
    ["segment", "a.wav"],
    ["resegment", "a.wav", "--baseline", "b.rttm"],
    ["stream", "vad", "-"],
    ["stream", "osd", "-"],
    ["stream", "segment", "-"],
    ["tune", "data", "--pipeline", "vad"],
    ["plot", "a.wav", "--out", "a.png"],
    ["labelstudio", "serve", "segment"],
    ["demo"],
    ["finetune", "data", "--out", "net"],
]


def test_every_network_command_takes_segmentation():
    parser = build_parser()
    for argv in NETWORK_COMMANDS:
        args = parser.parse_args([*argv, "--segmentation", "models/mine"])
        assert args.segmentation == "models/mine", argv
    # every command module but those running no network (predict: vad...resegment)
    covered = {argv[0] for argv in NETWORK_COMMANDS} | {"predict"}
    assert set(COMMANDS) - covered == {"evaluate", "download_weights"}


def test_finetune_then_vad_from_the_repository_is_reproducible(corpus, tmp_path):
    run = [corpus["train"], "--validation", corpus["val"], *TRAIN]
    run += ["--seed", "3", "--threads", "1", "--quiet"]
    first = _skseg("finetune", *run, "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert "output" in first.stdout and str(tmp_path / "a") in first.stdout
    second = _skseg("finetune", *run, "--out", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    weights = [(tmp_path / x / "model.safetensors").read_bytes() for x in "ab"]
    assert weights[0] == weights[1]
    assert read_config(tmp_path / "a")["provenance"]["seed"] is not None

    test = sorted(Path(corpus["test"]).glob("*.wav"))[0]
    vad = _skseg(
        "vad", test, "--segmentation", tmp_path / "a", "--rttm", tmp_path / "o.rttm"
    )
    assert vad.returncode == 0, vad.stderr
    expected = VADEstimator(segmentation=str(tmp_path / "a"), cache=False)
    speech = expected.fit().predict([str(test)])[0]
    assert (tmp_path / "o.rttm").read_text() == _rttm(speech)


def test_an_existing_out_is_refused_without_force(corpus, tmp_path, capsys):
    out = tmp_path / "net"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit:
        main(["finetune", str(corpus["train"]), "--out", str(out), *TRAIN, "-q"])
    assert exit.value.code == 2
    assert "already exists (pass --force to replace it)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # --force replaces a saved network only, never a folder of something else
    with pytest.raises(SystemExit) as exit:
        main(["finetune", str(corpus["train"]), "--out", str(out), "--force", "-q"])
    assert exit.value.code == 2
    assert "is not a saved network" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_data_is_a_usage_error_naming_it(corpus, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exit:
        main(["finetune", str(empty), "--out", str(tmp_path / "net"), "-q"])
    assert exit.value.code == 2
    assert str(empty) in capsys.readouterr().err
    assert not (tmp_path / "net").exists()
    # annotated only on 3 s: shorter than the model's 5 s chunks
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(sorted(Path(corpus["train"]).glob("*.wav"))[0], short / "a.wav")
    (short / "a.rttm").write_text("SPEAKER a 1 0.0 2.0 <NA> <NA> s1 <NA> <NA>\n")
    (short / "a.uem").write_text("a 1 0.0 3.0\n")
    with pytest.raises(SystemExit) as exit:
        main(["finetune", str(short), "--out", str(tmp_path / "net"), "-q"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert f"skseg finetune: {short / 'a.wav'}: skipped, no annotated region" in err
    assert "needs at least 2 usable files, got 0: pass --validation DIR" in err
    assert not (tmp_path / "net").exists()


def test_mix_probability_reaches_the_trainer_and_is_checked(corpus, tmp_path, capsys):
    out = tmp_path / "net"
    run = ["finetune", str(corpus["train"]), "--out", str(out), *TRAIN, "-q"]
    main([*run, "--validation", str(corpus["val"]), "--mix-probability", "0.25"])
    parameters = read_config(out)["provenance"]["training_parameters"]
    assert parameters["mix_probability"] == 0.25
    default = build_parser().parse_args(["finetune", "d", "--out", "n"])
    assert default.mix_probability == SegmentationTrainer().mix_probability
    with pytest.raises(SystemExit) as exit:
        main([*run, "--force", "--mix-probability", "1.5"])
    assert exit.value.code == 2
    assert "--mix-probability: must be in [0, 1], got 1.5" in capsys.readouterr().err


def _stop_at_step(monkeypatch, error):
    fit = SegmentationTrainer.fit

    def stopping_fit(self, X, y=None, *, validation=None, callback=None):
        def stop(progress):
            callback(progress)
            if progress.step == 1:
                raise error

        return fit(self, X, y, validation=validation, callback=stop)

    monkeypatch.setattr(SegmentationTrainer, "fit", stopping_fit)


def test_ctrl_c_saves_the_best_weights_and_exits_130(
    corpus, tmp_path, monkeypatch, capsys
):
    _stop_at_step(monkeypatch, KeyboardInterrupt)
    out = tmp_path / "net"
    args = [str(corpus["train"]), "--validation", str(corpus["val"]), *TRAIN]
    status = main(["finetune", *args, "--out", str(out), "--force", "-q"])
    assert status == 130
    assert "interrupted after 1 step(s)" in capsys.readouterr().err
    provenance = read_config(out)["provenance"]
    assert provenance["stopped"] == "interrupted" and provenance["steps"] == 1
    VADEstimator(segmentation=str(out), cache=False).fit()


def test_a_nan_loss_saves_the_best_weights_and_exits_1(
    corpus, tmp_path, monkeypatch, capsys
):
    _stop_at_step(monkeypatch, TrainingError("epoch 1, step 1: the loss is nan"))
    out = tmp_path / "net"
    save_model(load_model(), out)  # a saved network: --force replaces it
    args = [str(corpus["train"]), *TRAIN, "--out", str(out), "--force", "-q"]
    status = main(["finetune", *args])
    assert status == 1
    err = capsys.readouterr().err
    assert "the loss is nan" in err and f"saved to {out}" in err
    assert read_config(out)["provenance"]["stopped"] == "nan"


def test_a_fine_tuned_estimator_round_trips_without_its_folder(corpus, tmp_path):
    X, y = load_folder(corpus["train"])
    trainer = SegmentationTrainer(
        max_epochs=1,
        steps_per_epoch=2,
        batch_size=2,
        validation_fraction=0,
        random_state=0,
    ).fit(X, y)
    folder = Path(trainer.save(tmp_path / "net"))
    test = str(sorted(Path(corpus["test"]).glob("*.wav"))[0])
    directory = str(tmp_path / "scores")
    vad = VADEstimator(segmentation=trainer.model_, cache=directory).fit()
    expected = _rttm(vad.predict([test])[0])
    pretrained = VADEstimator(cache=directory).fit()
    pretrained.predict([test])
    # cached by the weights: the fine-tuned network's scores are its own
    assert vad.score_source().key(test) != pretrained.score_source().key(test)
    assert get_cache(directory).computed == 2
    assert len(list((tmp_path / "scores").rglob("*.npz"))) == 2

    vad.set_params(cache=False)
    joblib.dump(vad, tmp_path / "vad.joblib")
    shutil.rmtree(folder)
    code = f"""
import io, joblib
from skseg.io import write_rttm
vad = joblib.load({str(tmp_path / "vad.joblib")!r})
text = io.StringIO()
write_rttm(vad.predict([{test!r}])[0], text)
print(text.getvalue(), end="")
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected
    assert expected.startswith("SPEAKER")


def test_the_defaults_are_the_trainers():
    args = build_parser().parse_args(["finetune", "d", "--out", "n"])
    trainer = SegmentationTrainer().get_params()
    assert (args.epochs, args.lr, args.batch_size) == (
        trainer["max_epochs"],
        trainer["lr"],
        trainer["batch_size"],
    )
    assert (args.patience, args.validation_fraction, args.l2_sp) == (
        trainer["patience"],
        trainer["validation_fraction"],
        trainer["l2_sp"],
    )
    assert args.steps_per_epoch is trainer["steps_per_epoch"] is None
    assert args.early_stopping == trainer["early_stopping"] == "auto"
    assert args.if_worse == "keep-start" and trainer["keep_start_if_worse"] is True


def test_a_network_not_better_than_the_start_is_not_saved_silently(
    corpus, tmp_path, capsys
):
    # lr 1 wrecks the network in two steps: the start is better on validation
    run = [str(corpus["train"]), "--validation", str(corpus["val"]), *TRAIN]
    run += ["--lr", "1", "-q"]
    assert main(["finetune", *run, "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "kept              the starting network (the fine-tuned one" in out
    assert "skseg finetune: kept the starting network, the fine-tuned one" in err
    provenance = read_config(tmp_path / "a")["provenance"]
    assert provenance["kept"] == "start" and provenance["improved"] is False
    assert load_model(tmp_path / "a").weights_digest == load_model().weights_digest

    main(["finetune", *run, "--out", str(tmp_path / "b"), "--if-worse", "keep-trained"])
    out, err = capsys.readouterr()
    assert "kept              the fine-tuned network" in out
    assert "although it is not better on the validation files" in err
    assert read_config(tmp_path / "b")["provenance"]["kept"] == "trained"
    assert load_model(tmp_path / "b").weights_digest != load_model().weights_digest


@pytest.mark.parametrize(
    "trained, fraction, kept, comparison",
    [
        # lower, but within the noise: the start is kept, not for being worse
        (0.12, 0.81, "not firmly better", "81 % of chunk resamples: within the noise"),
        (0.14, 0.02, "not better", "2 % of chunk resamples: firm"),
        (0.13, 0.0, "not better", "no difference on the validation chunks"),
    ],
)
def test_the_summary_says_why_the_start_was_kept(trained, fraction, kept, comparison):
    from types import SimpleNamespace

    from skseg.cli.finetune import summary_table

    trainer = SimpleNamespace(
        history_=[{"epoch": 1}],
        max_epochs=1,
        n_steps_=16,
        start_score_=0.13,
        trained_score_=trained,
        best_epoch_=0,
        better_fraction_=fraction,
        kept_="start",
        early_stopping_=False,
        validation_duration_=60.0,
        stopped_="max_epochs",
        training_time_=1.0,
        chunks_per_second_=1.0,
    )
    rows = {
        line[:18].strip(): line[18:]
        for line in summary_table(trainer, "net").splitlines()
    }
    assert (
        rows["kept"]
        == f"the starting network (the fine-tuned one is {kept} on validation)"
    )
    assert rows["comparison"].endswith(comparison)
