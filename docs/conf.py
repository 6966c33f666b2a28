"""Sphinx configuration: MyST Markdown pages, numpydoc docstrings, autodoc API.

Build with ``make docs`` (warnings are errors):
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import os
import sys

# autodoc imports skseg from the source tree, so an uninstalled checkout builds too;
# found from this file, not the working directory, as tests import it from the root
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import skseg  # noqa: E402

project = "skseg"
author = "skseg developers"
copyright = "skseg developers (MIT)"
release = skseg.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- MyST ----------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
# `[text](page.md#a-heading)` links resolve to the heading's slug
myst_heading_anchors = 3

# -- autodoc / autosummary / numpydoc ----------------------------------------------
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "none"  # numpydoc's Parameters sections already give the types
autosummary_generate = False  # api.rst documents modules with automodule; no stubs
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# the doctest examples are run by pytest (`make test`), not by Sphinx
html_theme = "alabaster"
html_title = f"skseg {release}"
html_static_path: list[str] = []


# -- the API reference ------------------------------------------------------------
# api.rst holds two markers, replaced at read time by one section per module:
# the public modules, then the internal ones. Every module and package of skseg
# whose dotted name has no part starting with "_" is one or the other: internal
# when it is, or lies under, an entry of INTERNAL_MODULES, else public. Each
# section documents that module's own ``__all__`` names with autodoc; names a
# module merely re-exports are listed with a link to where they are documented.
# A new module or a new public name therefore appears without anyone editing
# api.rst, and tests/test_docstrings.py and tests/test_api.py check the same walk.
API_MARKER = ".. skseg-api-reference::"
INTERNAL_MARKER = ".. skseg-internal-reference::"

#: implementation modules: documented for contributors, not API (a package
#: entry covers its submodules); nothing in ``skseg.__all__`` comes from them
INTERNAL_MODULES: tuple[str, ...] = (
    "skseg.allocator",
    "skseg.cache",
    "skseg.cli",
    "skseg.digest",
    "skseg.features",
    "skseg.pipelines.parameters",
    "skseg.pipelines.presets",
    "skseg.scores",
    "skseg.sources",
)


def documented_modules() -> list[str]:
    """Return the dotted names of all of skseg's modules without a private part."""
    import pkgutil

    names = ["skseg"]
    for info in pkgutil.walk_packages(skseg.__path__, "skseg."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def is_internal(dotted: str) -> bool:
    """Whether a module is, or lies under, an entry of :data:`INTERNAL_MODULES`."""
    return any(dotted == m or dotted.startswith(m + ".") for m in INTERNAL_MODULES)


def public_modules() -> list[str]:
    """Return the dotted names of skseg's public modules, sorted, packages first."""
    return [name for name in documented_modules() if not is_internal(name)]


def internal_modules() -> list[str]:
    """Return the dotted names of skseg's internal modules, sorted."""
    return [name for name in documented_modules() if is_internal(name)]


def _canonical(module, name: str) -> str | None:
    """Where ``module.name`` is defined, if it was defined elsewhere."""
    obj = getattr(module, name)
    home = getattr(obj, "__module__", None)
    if isinstance(home, str) and home != module.__name__ and home.startswith("skseg"):
        return f"{home}.{getattr(obj, '__qualname__', name)}"
    return None


def _is_estimator(obj) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(obj, type) and issubclass(obj, BaseEstimator)


def _summary(obj) -> str:
    import inspect

    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def api_reference_rst(modules: list[str] | None = None) -> str:
    """The reST of the modules' sections (the public modules by default)."""
    import importlib
    import inspect

    out: list[str] = []
    for dotted in public_modules() if modules is None else modules:
        module = importlib.import_module(dotted)
        names = list(getattr(module, "__all__", []))
        own = [n for n in names if _canonical(module, n) is None]
        reexported = [(n, _canonical(module, n)) for n in names if n not in own]
        if dotted == "skseg":
            # api.rst's own tables list the package's names, grouped
            reexported = []
        title = f"``{dotted}``"
        out += [title, "~" * len(title), ""]
        out += [f".. automodule:: {dotted}", "   :no-members:", ""]
        if reexported:
            out += [
                ".. list-table:: Importable from here, documented with their module",
                "   :header-rows: 1",
                "   :widths: 30 70",
                "",
                "   * - name",
                "     - what",
            ]
            for name, target in reexported:
                obj = getattr(module, name)
                role = "class" if inspect.isclass(obj) else "func"
                out += [
                    f"   * - :{role}:`{name} <{target}>`",
                    f"     - {_summary(obj)}",
                ]
            out.append("")
        for name in own:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                directive = "autoclass"
            elif inspect.isfunction(obj):
                directive = "autofunction"
            else:
                directive = "autodata"
            out += [f".. {directive}:: {dotted}.{name}"]
            if directive == "autoclass" and _is_estimator(obj):
                # predict, decision_function, transform, score, __call__ live on
                # the shared base class: show them on each pipeline's own entry,
                # without scikit-learn's own (get_params, metadata routing)
                out += [
                    "   :inherited-members: BaseEstimator, _MetadataRequester",
                    "   :special-members: __call__",
                ]
            elif directive == "autoclass" and "__call__" in vars(obj):
                out.append("   :special-members: __call__")
            out.append("")
    return "\n".join(out)


def _inject_api(app, docname, source):
    if API_MARKER in source[0]:
        source[0] = source[0].replace(API_MARKER, api_reference_rst())
    if INTERNAL_MARKER in source[0]:
        source[0] = source[0].replace(
            INTERNAL_MARKER, api_reference_rst(internal_modules())
        )


def _api_outdated(app, env, added, changed, removed):
    # api.rst's text never changes, but the modules behind it do: re-read it on
    # every build so that a new module or name appears without a clean build
    return ["api"]


def setup(app):
    app.connect("source-read", _inject_api)
    app.connect("env-get-outdated", _api_outdated)
    return {"parallel_read_safe": True}
