"""The app's layout: the core's subpackages by job, each with a docstring, no import
circles, and the layers one way: ``app.cli`` may use ``app.ui`` and ``app.core``, ``app.ui``
may use ``app.core``, never the other way round; ``app.platform`` uses none of them; and no
module over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import app

ROOT = Path(app.__file__).parent


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, modules: set[str], me: str | None = None) -> set[str]:
    """Every app module ``path`` (the module ``me``) imports, TYPE_CHECKING and
    function-level imports too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = me or module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def graph(under: str) -> dict[str, set[str]]:
    files = sorted((ROOT.parent / under.replace(".", "/")).rglob("*.py"))
    modules = {module_name(p) for p in sorted(ROOT.rglob("*.py"))}
    return {module_name(p): imports_of(p, modules) for p in files}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if m not in g:
                continue
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_core_has_no_import_circle() -> None:
    g = graph("app.core")
    # packages import their modules' names for re-export; a package is not a cycle member
    g = {n: {m for m in deps if not (n.startswith(m + "."))} for n, deps in g.items()}
    cycle = find_cycle(g)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_imports_neither_the_ui_nor_the_command_line() -> None:
    """``app.core`` is the bottom layer: ``app.ui`` and ``app.cli`` build on it, never the
    other way round (TYPE_CHECKING and function-level imports count too)."""
    modules = {module_name(p) for p in sorted(ROOT.rglob("*.py"))}
    assert {"app.ui", "app.cli"} <= modules
    for mod, deps in graph("app.core").items():
        above = sorted(d for d in deps if d.split(".")[:2] in (["app", "ui"], ["app", "cli"]))
        assert not above, f"{mod} imports {above}"


def test_the_tray_does_not_import_the_command_line() -> None:
    """``app.ui`` sits below ``app.cli``: what both need (exit codes, the answers to a
    forwarded ``--load``) lives at ``app/`` or in ``app.core``."""
    for mod, deps in graph("app.ui").items():
        above = sorted(d for d in deps if d.split(".")[:2] == ["app", "cli"])
        assert not above, f"{mod} imports {above}"


def test_the_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from app.ui.tray import Tray\n"
        "def f():\n    import app.cli.ps\n    from app.cli import exit_codes\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(code, encoding="utf-8")
    modules = {"app.ui.tray", "app.cli.ps", "app.cli.exit_codes", "app.cli", "app.core.probe"}
    found = imports_of(path, modules, "app.core.probe")
    assert found == {"app.ui.tray", "app.cli.ps", "app.cli", "app.cli.exit_codes"}


def test_platform_imports_nothing_from_core() -> None:
    for mod, deps in graph("app.platform").items():
        core = sorted(d for d in deps if d.startswith("app.core"))
        assert not core, f"{mod} imports {core}"


def test_core_imports_no_qt() -> None:
    for path in sorted((ROOT / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("PySide6", "qasync") for n in names), path


def test_core_subpackages_say_what_they_hold() -> None:
    for init in sorted((ROOT / "core").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.splitlines()) == 1, f"{init} needs a one-line docstring"


def layer_of(module: str) -> str | None:
    """The core's part a module belongs to: its subpackage (``app.core.lifecycle``) or, for
    a module at the core's top, itself (``app.core.app_core``); None outside the core."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["app", "core"] and len(parts) > 2 else None


def layer_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """Which part of the core imports which other part (by any of its modules)."""
    out: dict[str, set[str]] = {}
    for mod, deps in g.items():
        a = layer_of(mod)
        if a is None:
            continue
        out.setdefault(a, set())
        out[a] |= {b for d in deps if (b := layer_of(d)) is not None and b != a}
    return out


def test_the_core_s_subpackages_import_no_circle() -> None:
    """A subpackage may use another, or be used by it, not both: no circle between the
    core's subpackages (and its top modules), even where the modules make none."""
    g = graph("app.core")
    cycle = find_cycle(layer_graph(g))
    if cycle is not None:
        why = [
            f"{m} -> {d}"
            for a, b in zip(cycle, cycle[1:], strict=False)
            for m, deps in g.items()
            if layer_of(m) == a
            for d in deps
            if layer_of(d) == b
        ]
        raise AssertionError(f"circle: {' -> '.join(cycle)}, because {'; '.join(why)}")


def test_the_layer_graph_finds_a_circle_the_modules_do_not_make() -> None:
    modules = {
        "app.core.servers.manager": {"app.core.servers.states"},
        "app.core.servers.supervisor": {"app.core.models.lifecycle"},
        "app.core.models.lifecycle": {"app.core.servers.manager"},
        "app.core.servers.states": set(),
    }
    assert find_cycle(modules) is None
    assert find_cycle(layer_graph(modules)) == [
        "app.core.models",
        "app.core.servers",
        "app.core.models",
    ]
    del modules["app.core.servers.supervisor"]
    assert find_cycle(layer_graph(modules)) is None


MAX_LINES = 450  # modules small, one job each (#19)


def too_long(root: Path, limit: int = MAX_LINES) -> list[str]:
    """``"<path>: <n> lines (over <limit>)"`` for each module under ``root`` longer than
    ``limit`` lines, the path from ``root``'s parent."""
    found = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            found.append(f"{path.relative_to(root.parent).as_posix()}: {n} lines (over {limit})")
    return found


def test_no_module_in_app_is_over_450_lines() -> None:
    long = too_long(ROOT)
    assert not long, "split along its seams: " + "; ".join(long)


def test_the_length_check_names_each_long_module(tmp_path: Path) -> None:
    pkg = tmp_path / "app"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "big.py").write_text("x = 1\n" * 451)
    (pkg / "fits.py").write_text("x = 1\n" * 450)
    assert too_long(pkg) == ["app/core/big.py: 451 lines (over 450)"]
