"""The package's layers, enforced: each module imports only from the layers below it.

paths (names)  <  formats (no I/O)  <  engine (plan, sources, stream)  <  http  <  app, cli

``errors`` sits at the bottom: everyone may use it; ``paths`` uses
nothing of ours but it. The check reads every module's imports with ``ast``
(including imports inside functions, which is where lazy imports live), so a shortcut
taken anywhere fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import zipwsgi

PACKAGE = Path(zipwsgi.__file__).parent

# Layer of each top-level part of the package, lowest first.
LAYERS = {
    "_version": 0,
    "errors": 0,
    "allocator": 0,  # process memory settings, used by the HTTP layer
    "paths": 0.5,  # the name and path policy: formats check names with it
    "formats": 1,
    "engine": 2,
    "sources": 2.5,  # the public alias of engine.sources
    "http": 3,
    "app": 4,
    "cli": 5,
    "serve": 4,  # the server settings `zipwsgi serve` runs the app with
    "compat": 3,  # python-zipstream's API over the engine
    "django": 5,
    "flask": 5,
    "__init__": 6,
    "__main__": 6,
}

# What the bottom layers may import beyond the standard library: nothing third-party.
NO_THIRD_PARTY = ("formats", "paths", "errors")
THIRD_PARTY = ("webob", "waitress", "django", "flask", "werkzeug")
IO_MODULES = {"os", "io", "socket", "pathlib", "shutil", "tempfile", "subprocess", "threading"}


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "demo" not in path.parts)


def part_of(module: str) -> str:
    """``zipwsgi.engine.stream`` -> ``engine``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def dotted(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (relative ones resolved)."""
    tree = ast.parse(path.read_text("utf-8"))
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append(name)
            # "from zipwsgi import engine" names a part too
            found.extend(f"{name}.{alias.name}" for alias in node.names if name == "zipwsgi")
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    me = dotted(path)
    my_part = me.split(".")[1] if "." in me else "__init__"
    assert my_part in LAYERS, f"new top-level part {my_part!r}: give it a layer in LAYERS"
    for name in imports_of(path):
        if not name.startswith("zipwsgi.") or name == "zipwsgi":
            continue
        other = part_of(name)
        if other == my_part:
            continue
        assert other in LAYERS, f"{me} imports unknown part {name}"
        assert LAYERS[other] < LAYERS[my_part] or other in ("errors", "_version"), (
            f"{me} (layer {LAYERS[my_part]}) imports {name} (layer {LAYERS[other]})"
        )


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if part_of(dotted(p)) in NO_THIRD_PARTY],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_bottom_layers_do_no_io_and_need_no_third_party(path: Path) -> None:
    """The format layer packs bytes from values: no file, socket or HTTP library."""
    for name in imports_of(path):
        assert not name.startswith(THIRD_PARTY), f"{path.name} imports {name}"
    if "formats" in path.parts:
        for name in imports_of(path):
            assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}: no I/O"
        tree = ast.parse(path.read_text("utf-8"))
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name)}
        assert "open" not in calls, f"{path.name} opens a file: no I/O in the format layer"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule above would catch a format module reaching up into the engine."""
    bad = tmp_path / "zipwsgi" / "formats" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from zipwsgi.engine.stream import ZipStream\nfrom ..http import wsgi\n")
    names = imports_of_at(bad, tmp_path)
    assert "zipwsgi.engine.stream" in names and "zipwsgi.http" in names


def imports_of_at(path: Path, root: Path) -> list[str]:
    """:func:`imports_of` for a file outside the installed package (the self-test)."""
    global PACKAGE
    saved, PACKAGE = PACKAGE, root / "zipwsgi"
    try:
        return imports_of(path)
    finally:
        PACKAGE = saved
