"""No skseg module reaches into another module's private names.

Walks every module of the package with :mod:`ast` and fails on
``from .x import _name``, on ``x._name`` where ``x`` is an imported skseg module,
and on ``getattr(obj, "_name")`` (a private attribute reached by string).
"""

import ast
from pathlib import Path

import skseg

PACKAGE = Path(skseg.__file__).parent


def private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path, root):
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module, node, root=PACKAGE.parent):
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not (root / module.replace(".", "/") / "__init__.py").exists():
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def violations(package=PACKAGE):
    root = package.parent
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, root)
        tree = ast.parse(path.read_text(), str(path))
        modules = set()  # local names bound to skseg modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = resolve(module, node, root)
                if not source.startswith("skseg"):
                    continue
                for alias in node.names:
                    if private(alias.name):
                        found.append(f"{module}: from {source} import {alias.name}")
                    elif (
                        root / source.replace(".", "/") / f"{alias.name}.py"
                    ).exists():
                        modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("skseg"):
                        modules.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                found.append(f"{module}:{node.lineno}: {node.value.id}.{node.attr}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and private(node.args[1].value)
            ):
                found.append(
                    f"{module}:{node.lineno}: {node.func.id}(..., "
                    f"{node.args[1].value!r})"
                )
    return found


def test_the_walker_finds_each_kind_of_reach(tmp_path):
    package = tmp_path / "skseg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cache.py").write_text("_nbytes = 1\n")
    (package / "tuning.py").write_text("def _cell(): pass\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "user.py").write_text(
        "from ..cache import _nbytes\n"
        "from .. import tuning\n"
        "tuning._cell()\n"
        "getattr(object(), '_label', None)\n"
        "from ..cache import get_cache as _get_cache  # a public name: fine\n"
    )
    found = violations(package)
    assert sorted(found) == [
        "skseg.sub.user: from skseg.cache import _nbytes",
        "skseg.sub.user:3: tuning._cell",
        "skseg.sub.user:4: getattr(..., '_label')",
    ], found


def test_no_module_imports_a_private_name_of_another():
    assert violations() == []
