"""The floors of the code: every module sits on one floor and imports only from floors at or below it.

The floor table is the README's ("What is inside"); this test reads it, so the
README and the code cannot disagree.  Imports are read with ``ast``, including
those inside functions: a lazy upward import is still an upward import.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("minivgg", "kernels")   # examples/ and benchmarks/ sit on the top floor and may import anything


def floor_table():
    """{path pattern: floor} from the README's table, e.g. {'kernels/': 1, 'minivgg/train.py': 5}."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## What is inside"):]
    table = {}
    for floor, where in re.findall(r"^\| (\d) \| (.+?) \|", section, flags=re.MULTILINE):
        for pattern in re.findall(r"`([^`]+)`", where):
            table[pattern] = int(floor)
    return table


def floor_of(path, table):
    """The floor of a source file: its own entry, else the entry of the closest folder above it."""
    relative = path.relative_to(ROOT).as_posix()
    if relative in table:
        return table[relative]
    folders = [pattern for pattern in table if pattern.endswith("/") and relative.startswith(pattern)]
    return table[max(folders, key=len)] if folders else None


def module_path(name):
    """The source file of module ``name`` (``minivgg.kernels`` lives in kernels/), or None outside the project."""
    parts = name.split(".")
    if parts[0] != "minivgg":
        return None
    base = ROOT / "kernels" if parts[1:2] == ["kernels"] else ROOT / "minivgg"
    rest = parts[2:] if parts[1:2] == ["kernels"] else parts[1:]
    candidate = base.joinpath(*rest)
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.exists():
            return path
    return None


def module_name(path):
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "kernels":
        parts = ["minivgg", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path, source):
    """Every module that the ``source`` of file ``path`` imports, as (line, module name)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:   # ``from . import nn`` imports a module; ``from .x import f`` imports x
                submodule = f"{base}.{alias.name}"
                yield node.lineno, submodule if module_path(submodule) else base


def source_files():
    return sorted(p for folder in CHECKED for p in (ROOT / folder).rglob("*.py"))


def test_the_readme_names_every_floor():
    assert sorted(set(floor_table().values())) == list(range(7))


def upward_imports(path, source):
    """The imports of ``source`` (the text of file ``path``) that reach a higher floor than ``path``'s."""
    table = floor_table()
    own = floor_of(path, table)
    assert own is not None, f"{path.relative_to(ROOT)} has no floor in the README's table"
    found = []
    for line, name in imported_modules(path, source):
        target = module_path(name)
        if target is not None and floor_of(target, table) > own:
            found.append(f"{path.relative_to(ROOT)}:{line} (floor {own}) imports {name} "
                         f"(floor {floor_of(target, table)})")
    return found


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_imports_upwards(path):
    assert upward_imports(path, path.read_text()) == []


@pytest.mark.parametrize("source", ["from ..autograd import Tensor", "from minivgg import nn",
                                    "def late():\n    import minivgg.train"])
def test_a_planted_upward_import_is_caught(source):
    """The checker itself: kernels/conv.py (floor 1) importing from floors 2, 3 and 5 is found."""
    assert len(upward_imports(ROOT / "kernels" / "conv.py", source)) == 1


@pytest.mark.parametrize("module, highest", [("minivgg.backend", 0), ("minivgg.kernels", 1),
                                             ("minivgg.functional", 2)])
def test_a_low_floor_imports_alone(module, highest):
    """Importing a floor loads no module from the floors above it (minivgg/__init__ is lazy)."""
    code = f"import sys, {module}; print('\\n'.join(m for m in sys.modules if m.startswith('minivgg')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ROOT).stdout.split()
    table = floor_table()
    above = [name for name in loaded if name != "minivgg" and floor_of(module_path(name), table) > highest]
    assert not above, f"import {module} also loaded {above}"
