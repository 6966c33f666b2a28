"""The public surface: what ``import skseg`` exports, and where the encoding lives.

- ``skseg.__all__`` and the tables of ``docs/api.rst`` list the same names, each
  table entry linking to the object the package exports;
- every public module declares ``__all__``, and every module is either public or
  internal (``docs/conf.py``'s ``INTERNAL_MODULES``); nothing the package exports
  comes from an internal module;
- every exported class and function has a numpydoc docstring (the *Examples*
  themselves are ``tests/test_docstrings.py``'s);
- every exception class skseg defines is exported;
- only the output heads (``skseg/heads.py``, ``skseg/powerset.py``) name the
  powerset encoding in code: elsewhere it appears in docstrings and comments only.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import re
import warnings
from pathlib import Path

import pytest
from numpydoc.docscrape import NumpyDocString

import skseg

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skseg"

# `:class:`Name <skseg.module.Name>`` in api.rst's tables
_ENTRY = re.compile(r"^   \* - :(?:class|func|data):`(\w+) <([\w.]+)>`$", re.MULTILINE)


@functools.cache
def conf():
    spec = importlib.util.spec_from_file_location(
        "_skseg_docs_conf_api", ROOT / "docs" / "conf.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def documented() -> dict[str, str]:
    """``{name: target}`` of the package tables of docs/api.rst."""
    text = (ROOT / "docs" / "api.rst").read_text()
    tables = text[: text.index("\nPublic modules\n")]
    entries = _ENTRY.findall(tables)
    names = [name for name, _ in entries]
    assert len(names) == len(set(names)), f"listed twice: {names}"
    return dict(entries)


def resolve(target: str) -> object:
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_package_exports_what_api_rst_lists():
    exported = set(skseg.__all__)
    assert len(skseg.__all__) == len(exported), "a name twice in skseg.__all__"
    listed = set(documented())
    assert exported - listed == set(), "exported, not listed in docs/api.rst"
    assert listed - exported == set(), "listed in docs/api.rst, not exported"
    # the same groups, in the same order
    assert list(documented()) == skseg.__all__


@pytest.mark.parametrize("name", skseg.__all__)
def test_each_export_imports_and_its_entry_links_to_it(name):
    obj = getattr(skseg, name)
    target = documented()[name]
    assert resolve(target) is obj, f"api.rst links {name} to {target}"
    # the link's target is where autodoc documents the object
    assert target == f"{obj.__module__}.{obj.__qualname__}"
    assert obj.__module__ in conf().documented_modules()


@pytest.mark.parametrize("name", skseg.__all__)
def test_each_export_has_a_numpydoc_docstring(name):
    obj = getattr(skseg, name)
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else ""
    assert doc.strip(), f"{name} has no docstring of its own"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown or malformed section
        parsed = NumpyDocString(doc)
    assert parsed["Summary"], f"{name}: no one-line summary"
    assert parsed["Examples"], f"{name}: no Examples section"
    function = obj if inspect.isfunction(obj) else obj.__init__
    if inspect.isfunction(function):
        documented = {
            n.strip() for p in parsed["Parameters"] for n in p.name.split(",")
        }
        params = [
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        undocumented = [p for p in params if p not in documented]
        # a class documents the parameters of its own __init__, not a base's
        if inspect.isfunction(obj) or "__init__" in vars(obj):
            assert undocumented == [], f"{name}: parameters not documented"


def test_nothing_exported_comes_from_an_internal_module():
    from_internal = {
        name: getattr(skseg, name).__module__
        for name in skseg.__all__
        if conf().is_internal(getattr(skseg, name).__module__)
    }
    assert from_internal == {}


def test_every_module_is_public_or_internal_and_public_ones_declare_all():
    public, internal = conf().public_modules(), conf().internal_modules()
    assert set(public).isdisjoint(internal)
    assert sorted(public + internal) == conf().documented_modules()
    for entry in conf().INTERNAL_MODULES:
        assert entry in internal, f"INTERNAL_MODULES names no module {entry!r}"
    missing = [m for m in public if not hasattr(importlib.import_module(m), "__all__")]
    assert missing == []
    # the walk is not empty: the estimators' modules are public, the CLI internal
    assert "skseg.pipelines.vad" in public and "skseg.cli.predict" in internal


def test_every_exception_class_is_exported():
    defined = {}
    for dotted in conf().documented_modules():
        module = importlib.import_module(dotted)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, skseg.SksegError)
                and obj.__module__ == dotted
                and not name.startswith("_")
            ):
                defined[name] = obj
    # the synthetic-speech tooling's own error is not part of the product's API
    defined.pop("EngineUnavailableError", None)
    assert defined, "the walk found no exception class"
    missing = sorted(
        n for n, cls in defined.items() if getattr(skseg, n, None) is not cls
    )
    assert missing == [], f"exception classes not exported by skseg: {missing}"


# -- the powerset encoding lives in the heads ----------------------------------------
#: the modules whose code may name the powerset encoding
ENCODING_MODULES = {"skseg/heads.py", "skseg/powerset.py"}


def encoding_mentions(source: str) -> list[tuple[int, str]]:
    """``(line, word)`` of every identifier or non-docstring string naming powersets.

    Comments are not in the syntax tree; docstrings are skipped: both document.
    """
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            )
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            docstrings.add(id(body[0].value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = [] if id(node) in docstrings else [node.value]
        elif isinstance(node, ast.Name):
            words = [node.id]
        elif isinstance(node, ast.Attribute):
            words = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            words = [node.name]
        elif isinstance(node, ast.arg):
            words = [node.arg]
        elif isinstance(node, ast.keyword):
            words = [node.arg or ""]
        elif isinstance(node, ast.alias):
            words = [node.name, node.asname or ""]
        else:
            continue
        found += [
            (getattr(node, "lineno", 0), w[:60])
            for w in words
            if "powerset" in w.lower()
        ]
    return found


def test_the_scan_sees_code_and_skips_documentation():
    source = '''
"""A powerset module docstring."""
import skseg.powerset as ps  # a powerset comment
def f(model):
    """Powerset docstring."""
    x = model.head.powerset
    return "powerset-hard", g(powerset=x)
'''
    assert sorted(w for _, w in encoding_mentions(source)) == [
        "powerset",
        "powerset",
        "powerset-hard",
        "skseg.powerset",
    ]
    assert encoding_mentions('"""Powerset outputs."""\n# powerset\nx = 1\n') == []


def test_only_the_heads_name_the_powerset_encoding_in_code():
    outside = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found = encoding_mentions(path.read_text())
        if found and rel not in ENCODING_MODULES:
            outside[rel] = found[:5]
    assert outside == {}
