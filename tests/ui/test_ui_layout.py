"""The UI's parts talk through their host protocols: no ``getattr`` on a host, and the
pieces of a window do not import the window (or the app) that holds them."""

from __future__ import annotations

import ast
from pathlib import Path

import app.ui

UI = Path(app.ui.__file__).parent
# a piece → the modules that hold it, which it must not import
HELD_BY = {
    "models_table": {"app.ui.models_window", "app.ui.tray_app"},
    "runs_ui": {"app.ui.tray_app", "app.ui.tray_menu"},
    "tray_menu": {"app.ui.tray_app"},
    "models_window": {"app.ui.tray_app", "app.ui.windows"},
}


def tree(name: str) -> ast.Module:
    return ast.parse((UI / f"{name}.py").read_text())


def test_no_getattr_on_a_host() -> None:
    found = []
    for path in sorted(UI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
                target = ast.unparse(node.args[0])
                if target.split(".")[-1] in ("host", "app") or ".host." in f".{target}.":
                    found.append(f"{path.name}:{node.lineno}: getattr({target}, …)")
    assert not found, found


def test_pieces_do_not_import_what_holds_them() -> None:
    for piece, holders in HELD_BY.items():
        imported = set()
        for node in ast.walk(tree(piece)):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert not imported & holders, (piece, imported & holders)
