"""One set of exit codes (``app.exit_codes.ExitCode``): every command, ``main.py`` and
the launcher return its members, never a number of their own, and the README lists each."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import app
from app.exit_codes import ExitCode

APP = Path(app.__file__).parent
README = APP.parent / "README.md"


def numbers_returned(path: Path) -> list[str]:
    """``file:line`` of each ``return <int>`` and each ``EXIT_*`` name defined in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        value = node.value if isinstance(node, ast.Return) else None
        if isinstance(value, ast.Constant) and type(value.value) is int:
            out.append(f"{path.name}:{node.lineno}: return {value.value}")
        if isinstance(node, ast.Name) and node.id.startswith("EXIT_"):
            out.append(f"{path.name}:{node.lineno}: {node.id}")
    return out


def test_the_entry_points_return_exit_codes_not_numbers() -> None:
    files = [APP / "main.py", APP / "ui" / "launch.py", *sorted((APP / "cli").glob("*.py"))]
    found = [hit for f in files for hit in numbers_returned(f)]
    assert not found, found


def test_the_rule_sees_a_number(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("EXIT_OK = 0\ndef main():\n    return 2\n", encoding="utf-8")
    assert numbers_returned(f) == ["x.py:1: EXIT_OK", "x.py:3: return 2"]


def test_the_readme_lists_every_exit_code() -> None:
    table = README.read_text(encoding="utf-8").split("| Exit code | Meaning |", 1)[1]
    listed = {int(n) for n in re.findall(r"^\| (\d+) \|", table.split("\n\n", 1)[0], re.M)}
    assert listed == {int(c) for c in ExitCode}
