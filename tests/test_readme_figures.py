"""Every figure in the README's Benchmarks leads to a command, a commit and a saved result
(``bench/results/<name>.json``), and the result still describes the code: the files its
benchmark measures (the ``MEASURES`` list beside the script) are the ones it measured.
The rules live in ``bench/results.py`` (``readme_problems``), which ``uv run python
bench/results.py check`` runs too; the second test shows each rule failing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench import results

ROOT = Path(__file__).resolve().parent.parent


def test_every_readme_figure_names_a_fresh_saved_result() -> None:
    problems = results.readme_problems((ROOT / "README.md").read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def _repo(tmp_path: Path) -> Path:
    """A small tree shaped like ours: one benchmark measuring one app file."""
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "fast.py").write_text("x = 1\n")
    (tmp_path / "bench" / "speed.py").write_text('MEASURES = ["app/fast.py"]\n')
    return tmp_path


def _result(root: Path, name: str = "speed", **over) -> dict:
    r = {
        "name": name,
        "command": "uv run python bench/speed.py --rounds 3",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "machine": {"cores": 2, "gpu": None},
        "measures": ["app/fast.py"],
        "fingerprint": results.fingerprint(["app/fast.py"], root),
        "uncommitted": [],
        "figures": {"p50_ms": 1.5},
    }
    r.update(over)
    (root / "bench" / "results" / f"{name}.json").write_text(json.dumps(r))
    return r


GOOD = """# X

## Benchmarks

### Speed (measured at 0123456)

Measured at 0123456 with `uv run python bench/speed.py --rounds 3`
([result](bench/results/speed.json)).

| what | median |
|---|---|
| p50 | 1.5 ms |

## Source layout
"""


def test_the_figure_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    folder = root / "bench" / "results"
    _result(root)

    def check(readme: str) -> list[str]:
        return results.readme_problems(readme, folder, root)

    assert check(GOOD) == []
    # a figure with no result, a result that does not exist
    assert "names no result file" in " ".join(check(GOOD.replace("bench/results/speed.json", "")))
    assert "does not exist" in " ".join(check(GOOD.replace("speed.json", "sped.json")))
    # another commit or command than the result's
    assert "does not name the commit" in " ".join(check(GOOD.replace("0123456", "fedcba9")))
    assert "does not name the command" in " ".join(check(GOOD.replace("--rounds 3", "")))
    # a result no figure quotes
    _result(root, "orphan")
    assert "quoted by no figure" in " ".join(check(GOOD))
    (folder / "orphan.json").unlink()
    # the measured code changed since: stale, with the command to run again
    (root / "app" / "fast.py").write_text("x = 2\n")
    stale = " ".join(check(GOOD))
    assert "app/fast.py changed since 0123456" in stale and "bench/speed.py --rounds 3" in stale
    _result(root)  # measured again: fresh
    assert check(GOOD) == []
    # the list beside the script changed: its results must be measured again
    (root / "bench" / "speed.py").write_text('MEASURES = ["app/fast.py", "app/slow.py"]\n')
    assert "MEASURES changed" in " ".join(check(GOOD))
    (root / "bench" / "speed.py").write_text('MEASURES = ["app/fast.py"]\n')
    # measured with uncommitted changes: no commit holds what was measured
    _result(root, uncommitted=["app/fast.py"])
    assert "uncommitted changes to app/fast.py" in " ".join(check(GOOD))
    # a figure from another machine must say it is quoted and name the card
    _result(root, quoted=True, machine={"gpu": "NVIDIA H200, 143771 MiB"})
    assert "name the card" in " ".join(check(GOOD))
    quoted = GOOD.replace("### Speed", "### Speed on an NVIDIA H200 (quoted)")
    assert check(quoted) == []
    # stale, and said so: accepted while the measured code stays as it was acknowledged
    measured = _result(root)["fingerprint"]
    (root / "app" / "fast.py").write_text("x = 3\n")
    since = "fedcba9876543210fedcba9876543210fedcba98"
    ack = {
        "since": since,
        "why": "no time",
        "fingerprint": results.fingerprint(["app/fast.py"], root),
    }
    _result(root, fingerprint=measured, stale=ack)
    assert "must say 'Stale', name fedcba9" in " ".join(check(GOOD))
    said = GOOD.replace(
        "([result]", "Stale: app/fast.py changed at fedcba9, no time to run it ([result]"
    )
    assert check(said) == []
    (root / "app" / "fast.py").write_text("x = 4\n")  # changed again: not acknowledged
    assert "acknowledged stale at fedcba9, but app/fast.py changed again" in " ".join(check(said))


def test_fingerprints_follow_content_and_folders(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "app" / "pkg").mkdir()
    (root / "app" / "pkg" / "a.py").write_text("a = 1\n")
    assert results.expand(["app/pkg", "app/fast.py", "app/none.py"], root) == [
        "app/fast.py",
        "app/none.py",
        "app/pkg/a.py",
    ]
    before = results.fingerprint(["app/pkg"], root)
    # git's own blob id: `git hash-object` prints the same
    git = subprocess.run(
        ["git", "hash-object", "app/pkg/a.py"], cwd=root, capture_output=True, text=True
    )
    assert before == {"app/pkg/a.py": git.stdout.strip()}
    (root / "app" / "pkg" / "b.py").write_text("b = 1\n")  # a new file on the path counts
    assert results.fingerprint(["app/pkg"], root) != before
    assert results.fingerprint(["app/none.py"], root) == {"app/none.py": "missing"}
