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


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module, node):
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not module_name_is_package(module):
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def module_name_is_package(module):
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


def violations():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        modules = set()  # local names bound to skseg modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = resolve(module, node)
                if not source.startswith("skseg"):
                    continue
                for alias in node.names:
                    if private(alias.name):
                        found.append(f"{module}: from {source} import {alias.name}")
                    elif (
                        PACKAGE.parent / source.replace(".", "/") / f"{alias.name}.py"
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


def test_the_walker_sees_what_it_looks_for():
    source = "from .cache import _nbytes\nimport skseg.tuning as t\nt._cell(1)\n"
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert resolve("skseg.scores", imports[0]) == "skseg.cache"
    assert private("_nbytes") and not private("__init__") and not private("x")


def test_no_module_imports_a_private_name_of_another():
    assert violations() == []
