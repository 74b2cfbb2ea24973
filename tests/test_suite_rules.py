"""Rules of the suite, checked so they cannot quietly regress: one wait module
(tests/support/wait.py), one qasync loop fixture (tests/support/qloop.py), every test
core built by tests/support/app.make_core, i.e. by the app's own factory, and test folders
that mirror the code (the README names each one)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"
APP = TESTS.parent / "app"
# Folders that test the whole app rather than one package, and folders of test helpers.
CROSS_CUTTING = {"faults", "reliability"}
HELPERS = {"support", "data"}
WAIT_NAME = re.compile(r"^_*(until|wait_for|wait_until)$")
CORE_BUILDERS = {"AppCore", "build_core"}


def violations(source: str, where: str) -> list[str]:
    """What in one test module breaks the rules (``where`` names it in the messages)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if WAIT_NAME.match(node.name):
                out.append(
                    f"{where}:{node.lineno}: defines {node.name}(); use tests/support/wait.py"
                )
            if node.name == "qloop":
                out.append(f"{where}:{node.lineno}: a qloop fixture; tests/support/qloop.py has it")
        elif isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name in CORE_BUILDERS:
                out.append(
                    f"{where}:{node.lineno}: calls {name}(); build cores with "
                    "tests.support.app.make_core"
                )
    return out


def test_no_test_module_has_its_own_waits_loop_or_core_factory() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if SUPPORT in path.parents:
            continue
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS)))
    assert not found, "\n".join(found)


def test_the_one_places_are_where_the_rules_point() -> None:
    wait = ast.parse((SUPPORT / "wait.py").read_text(encoding="utf-8"))
    assert {"until", "wait_until"} <= {n.name for n in wait.body if hasattr(n, "name")}
    qloop = ast.parse((SUPPORT / "qloop.py").read_text(encoding="utf-8"))
    assert {"qloop", "arun"} <= {n.name for n in qloop.body if hasattr(n, "name")}
    assert '"tests.support.qloop"' in (TESTS / "conftest.py").read_text(encoding="utf-8")
    # make_core builds through the app's factory, not AppCore by hand
    app = (SUPPORT / "app.py").read_text(encoding="utf-8")
    assert "from app.core.bootstrap import build_core" in app and "AppCore(" not in app


def test_the_rules_catch_what_they_forbid() -> None:
    bad = """
async def until(p): ...
def _until(p): ...
def helper():
    def wait_for(p): ...
@pytest.fixture
def qloop(qapp): ...
core = AppCore(s, paths)
core = bootstrap.build_core(s, paths)
"""
    found = violations(bad, "bad.py")
    assert len(found) == 6, found
    ok = "from tests.support.wait import until\nawait until(lambda: True)\nmake_core(s)\n"
    assert violations(ok, "ok.py") == []


def mirrored() -> set[str]:
    """The test folders the code asks for: one per subpackage of ``app/core`` and of ``app``
    (``cli``, ``ui``, ``platform``), ``core`` for the core's top modules, ``packaging``."""
    packages = {p.parent.name for p in APP.glob("*/__init__.py")} - {"core"}
    return (
        {p.parent.name for p in (APP / "core").glob("*/__init__.py")}
        | packages
        | {
            "core",
            "packaging",
        }
    )


def test_the_tests_mirror_the_code() -> None:
    untested = sorted(f for f in mirrored() if not any((TESTS / f).glob("test_*.py")))
    assert not untested, f"no tests/<name>/ with tests of app/core/<name> or app/<name>: {untested}"
    folders = {  # a folder left with only a __pycache__ is not one
        p.name
        for p in TESTS.iterdir()
        if p.is_dir() and any(f.name != "__pycache__" for f in p.iterdir())
    }
    odd = sorted(folders - mirrored() - CROSS_CUTTING - HELPERS)
    assert not odd, f"test folders that mirror no package of app/: {odd}"


def test_the_readme_names_every_test_folder() -> None:
    development = (
        (TESTS.parent / "README.md").read_text(encoding="utf-8").split("## Development")[1]
    )
    named = set(re.findall(r"`tests/([a-z_]+)/?`", development))
    folders = {p.parent.name for p in TESTS.glob("*/__init__.py")}
    assert named - HELPERS == folders - HELPERS, (sorted(named), sorted(folders - HELPERS))
