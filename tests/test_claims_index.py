"""The claims index (``tests/README.md``): each promise of the README and the tests that
check it. Every setting of the settings model, every key of a model's section in
``models.ini`` (the preset model), every route of the API's router and every flag of the
command line is promise-shaped and derivable, so each must be named by a row
(a new one, from any branch, fails here until it is indexed); every test a row names must
exist, and for a row naming a setting, route or flag, one of its tests (or its module)
must mention it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
INDEX = TESTS / "README.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")
NAMED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Row:
    promise: str
    names: frozenset[str]  # what the promise cell names in backticks
    tests: tuple[tuple[str, str], ...]  # (file, test name)


def rows(index: str) -> list[Row]:
    """The rows of the "Claims index" table."""
    section = index.split("## Claims index", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[0]) <= set("-: "):
            continue
        promise, checked = cells[0], " ".join(cells[1:])
        if promise.lower().startswith("readme promise"):
            continue  # the header
        named = NAMED.findall(promise)
        flags = {n.split()[0] for n in named if n.startswith("--")}  # `--ps --json`, `--x on`
        out.append(Row(promise, frozenset(named) | flags, tuple(TEST_REF.findall(checked))))
    return out


def settings() -> set[str]:
    from app.config import Settings

    return set(Settings.model_fields)


def preset_keys() -> set[str]:
    from app.core.presets.fields import ModelPreset

    return {f.alias or name for name, f in ModelPreset.model_fields.items()}


def routes() -> set[str]:
    from aiohttp import web

    from app.core.api.server import add_routes
    from app.core.api.server import routes as held

    app = web.Application()
    add_routes(app)
    return {f"{method} {path}" for method, path in held(app)}


def flags() -> set[str]:
    from app.main import build_parser

    return {o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")}


def derived() -> dict[str, set[str]]:
    return {
        "setting": settings(),
        "models.ini key": preset_keys(),
        "route": routes(),
        "flag": flags() - {"--help"},
    }


def mentions(name: str) -> tuple[str, ...]:
    """What a test's source shows when it uses ``name``: a route's path up to its first
    parameter, or its last word where a client library calls it (``/v1/responses``:
    ``responses.create``); a setting or flag as written."""
    if " /" in name:
        path = name.split(" ", 1)[1].split("{", 1)[0]
        words = [w for w in path.split("/") if w]
        return (path, f".{words[-1]}") if words else (path,)
    return (name,)


def source_of(file: str, name: str, root: Path = ROOT) -> str | None:
    """The source of test ``name`` (``Class::method`` too) in ``file``, then its module's
    (a test's helpers and case tables live beside it); None if the test is missing."""
    path = root / file
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    body: list[ast.stmt] = ast.parse(text).body
    node = None
    for part in name.split("::"):
        node = next(
            (
                n
                for n in body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        body = node.body if isinstance(node, ast.ClassDef) else []
    return (ast.get_source_segment(text, node) or "") + "\n" + text


def problems(index: str, want: dict[str, set[str]], root: Path = ROOT) -> list[str]:
    table = rows(index)
    named = set().union(*(r.names for r in table)) if table else set()
    out = []
    for kind, items in want.items():
        for item in sorted(items - named):
            out.append(
                f"the {kind} {item} is named by no row of the claims index (tests/README.md)"
            )
    for r in table:
        if not r.tests:
            out.append(f"row {r.promise[:60]!r} names no test (`tests/<file>.py::<test>`)")
        sources = {}
        for file, name in r.tests:
            src = source_of(file, name, root)
            if src is None:
                out.append(f"row {r.promise[:60]!r}: {file}::{name} does not exist")
            else:
                sources[(file, name)] = src
        for item in sorted(r.names & set().union(*want.values())):
            seen = any(m in s for m in mentions(item) for s in sources.values())
            if sources and not seen:
                out.append(f"row {r.promise[:60]!r}: none of its tests mentions {item!r}")
    return out


def test_every_setting_route_and_flag_is_indexed_with_tests_that_exist() -> None:
    found = problems(INDEX.read_text(encoding="utf-8"), derived())
    assert not found, "\n".join(found)


def test_the_index_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "def test_port():\n    assert 'API_PORT'\n\n"
        "class TestK:\n    def test_k(self):\n        get('/api/v0/models/' + key)\n"
    )
    index = (
        "## Claims index\n\n| README promise | Checked by |\n|---|---|\n"
        "| `API_PORT`: the API's port | `tests/test_x.py::test_port` |\n"
        "| `GET /api/v0/models/{model}` | `tests/test_x.py::TestK::test_k` |\n"
    )
    want = {"setting": {"API_PORT"}, "route": {"GET /api/v0/models/{model}"}}
    assert problems(index, want, tmp_path) == []
    # a new setting (another branch's) fails until a row names it
    more = {**want, "setting": {"API_PORT", "NEW_SETTING"}}
    assert problems(index, more, tmp_path) == [
        "the setting NEW_SETTING is named by no row of the claims index (tests/README.md)"
    ]
    # a row pointing at a test that is gone, or at one that never mentions what it names
    gone = index.replace("::test_port", "::test_gone")
    assert "tests/test_x.py::test_gone does not exist" in " ".join(problems(gone, want, tmp_path))
    wrong = index.replace("`API_PORT`: the", "`API_PORT`, `JIT_LOAD`: the")
    wanted = {**want, "setting": {"API_PORT", "JIT_LOAD"}}
    assert "none of its tests mentions 'JIT_LOAD'" in " ".join(problems(wrong, wanted, tmp_path))
    bare = index + "| a promise with no test | nothing |\n"
    assert "names no test" in " ".join(problems(bare, want, tmp_path))


def test_what_is_derived_is_what_the_app_holds() -> None:
    d = derived()
    assert {"API_PORT", "MAX_LOADED_MODELS", "HUNG_PROBE_SECONDS"} <= d["setting"]
    assert {"POST /v1/chat/completions", "GET /api/v0/ps", "POST /api/v1/chat"} <= d["route"]
    assert {"--ps", "--json", "--benchmark", "--load"} <= d["flag"]
    assert {"ctx-size", "n-gpu-layers", "model-draft", "pinned"} <= d["models.ini key"]
    assert not any(r.startswith("HEAD ") for r in d["route"])
