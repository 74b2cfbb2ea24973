"""Benchmark results you can trace: one small JSON per figure in ``bench/results/`` (tracked
by git), holding the figures, the command that produced them, the commit, the machine and
a fingerprint of the files the benchmark measures.

A benchmark keeps, beside itself, the list of files whose code it measures, and saves its
figures through ``save``::

    MEASURES = ["app/core/api/proxy.py", "app/core/api/upstream.py"]   # files, folders, globs
    ...
    results.save("proxy", {"p50_ms": 2.25, ...}, measures=MEASURES)

The README quotes the figure with the result file, the command and the commit (see the
"How to add a figure" paragraph in bench/README.md); ``tests/test_readme_figures.py``
fails when a README figure has no result, names another commit or command, or when a
measured file changed since (its content differs from the fingerprint: then run the
benchmark again). From a terminal:

    uv run python bench/results.py check     # every result: fresh, or what changed
    uv run python bench/results.py restamp   # after a rebase: move results whose measured
                                             # files are byte-identical to the new commit
    uv run python bench/results.py stale NAME "why it is not measured again now"

``stale`` is for a figure whose measured code changed where its benchmark cannot be run
again (no time, no such machine): it records the code as it is now and the reason, and
the README's section must then say "Stale", name the commit it was acknowledged at and why.
The check accepts it only while the measured files stay as they were acknowledged: the
next change to them makes it fail again.
"""

from __future__ import annotations

import ast
import datetime as dt
import glob
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


# ── What a benchmark measures ──────────────────────────────────────────────────
def expand(measures: Iterable[str], root: Path = ROOT) -> list[str]:
    """The files ``measures`` names, relative to ``root``, sorted: a file as is, a folder as
    every ``*.py`` below it, anything else as a glob. A name that matches nothing is kept
    (its fingerprint is "missing", so a result notices when it appears)."""
    out: set[str] = set()
    for m in measures:
        p = root / m
        if p.is_file():
            out.add(m)
        elif p.is_dir():
            out.update(
                f.relative_to(root).as_posix()
                for f in p.rglob("*.py")
                if "__pycache__" not in f.parts
            )
        else:
            found = [Path(f) for f in glob.glob(str(root / m), recursive=True)]
            files = [f.relative_to(root).as_posix() for f in found if f.is_file()]
            out.update(files or [m])
    return sorted(out)


def blob_id(path: Path) -> str:
    """git's blob id of a file's content (what ``git hash-object`` prints); "missing"."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fingerprint(measures: Iterable[str], root: Path = ROOT) -> dict[str, str]:
    return {f: blob_id(root / f) for f in expand(measures, root)}


def script_measures(script: Path) -> list[list[str]]:
    """The lists a benchmark script keeps beside itself: every module-level constant whose
    name ends in ``MEASURES``, read from the source (the script is not imported)."""
    out = []
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id.endswith("MEASURES") for t in targets):
                value = ast.literal_eval(node.value)
                out.append([str(v) for v in value])
    return out


# ── Where and on what it ran ────────────────────────────────────────────────────
def git(*args: str, root: Path = ROOT) -> str | None:
    try:
        r = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def uncommitted(files: Sequence[str], root: Path = ROOT) -> list[str]:
    """Measured files whose content is not the committed one (edited, or not tracked);
    none when git cannot tell (a copy of the tree without its history, on a device)."""
    if not files:
        return []
    tree = git("ls-tree", "HEAD", "--", *files, root=root)
    if tree is None:
        return []
    at_head = {}
    for line in tree.splitlines():
        meta, path = line.split("\t", 1)
        at_head[path] = meta.split()[2]
    return [f for f in files if blob_id(root / f) != at_head.get(f, "missing")]


def machine(note: str | None = None) -> dict:
    """The machine in a few words: CPU, cores, memory, OS, Python, GPU, and how busy it was
    (the load average when the figures were saved; other work shares this machine)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram = None
    gpu = None
    try:
        r = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        gpu = r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        pass
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    out = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu,
        "load_average_1_5_15": load,
    }
    if note:
        out["note"] = note
    return out


def command(argv: Sequence[str] | None = None) -> str:
    """How to run it again: ``uv run python bench/<script>.py <its arguments>``."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        rel = script.relative_to(ROOT).as_posix()
    except ValueError:
        rel = argv[0]
    return " ".join(["uv run python", rel, *(shlex.quote(a) for a in argv[1:])])


# ── Save and load ───────────────────────────────────────────────────────────────
def save(
    name: str,
    figures: dict,
    *,
    measures: Sequence[str],
    note: str | None = None,
    argv: Sequence[str] | None = None,
) -> Path:
    """Write ``bench/results/<name>.json``: ``figures`` (numbers, small lists), the command,
    the commit, the machine (``note``, or ``FLT_BENCH_NOTE``: what else ran) and the measured
    files' fingerprint. Returns the path. On a machine without the repository's history (a
    device), ``FLT_BENCH_COMMIT`` names the commit and ``FLT_BENCH_RESULTS`` another folder."""
    if not NAME.match(name):
        raise ValueError(f"result name {name!r}: lower-case letters, digits, - and _")
    files = expand(measures)
    dirty = uncommitted(files)
    result = {
        "name": name,
        "command": command(argv),
        "commit": git("rev-parse", "HEAD") or os.environ.get("FLT_BENCH_COMMIT"),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(note or os.environ.get("FLT_BENCH_NOTE")),
        "measures": list(measures),
        "fingerprint": fingerprint(measures),
        "uncommitted": dirty,
        "figures": figures,
    }
    folder = Path(os.environ.get("FLT_BENCH_RESULTS") or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} (commit {(result['commit'] or '?')[:7]})")
    if dirty:
        print(f"warning: measured with uncommitted changes to {', '.join(dirty)}: commit them "
              "and run again, or the README cannot cite this result", file=sys.stderr)  # fmt: skip
    return path


def load(name: str, folder: Path = RESULTS) -> dict:
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def all_results(folder: Path = RESULTS) -> dict[str, dict]:
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))
    }


# ── Is a result still true? ─────────────────────────────────────────────────────
def script_of(result: dict) -> str | None:
    """The benchmark script a result's command runs (``bench/x.py``)."""
    m = re.search(r"(bench/[\w/-]+\.(?:py|sh))", result.get("command") or "")
    return m.group(1) if m else None


def stale(result: dict, root: Path = ROOT) -> list[str]:
    """Why ``result`` no longer describes the code (empty: it does). A quoted result
    (measured on another machine, kept as it was) is not checked here."""
    if result.get("quoted"):
        return []
    name = result.get("name", "?")
    script = script_of(result)
    rerun = f"run `{result.get('command')}` again"
    if script is None or not (root / script).is_file():
        return [
            f"{name}: its command names no bench/ script that exists: {result.get('command')!r}"
        ]
    kept = script_measures(root / script)
    if not kept:
        return [f"{name}: {script} keeps no MEASURES list beside it"]
    if list(result.get("measures") or []) not in kept:
        return [f"{name}: {script}'s MEASURES changed since it was measured; {rerun}"]
    out = []
    if result.get("uncommitted"):
        out.append(
            f"{name}: measured with uncommitted changes to {', '.join(result['uncommitted'])}; "
            f"commit them and {rerun}"
        )
    now = fingerprint(result["measures"], root)
    then = result.get("fingerprint") or {}
    changed = sorted(f for f in set(now) | set(then) if now.get(f) != then.get(f))
    ack = result.get("stale")
    if changed and ack:
        since = str(ack.get("since"))[:7]
        if now == ack.get("fingerprint"):
            return out  # stale, and the README says so (readme_problems checks that)
        moved = sorted(f for f in set(now) | set(ack.get("fingerprint") or {})
                       if now.get(f) != (ack.get("fingerprint") or {}).get(f))  # fmt: skip
        out.append(
            f"{name}: acknowledged stale at {since}, but {', '.join(moved[:5])} changed again "
            f"since; {rerun}"
        )
        return out
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        out.append(f"{name}: {shown} changed since {str(result.get('commit'))[:7]}; {rerun}")
    return out


def acknowledged(result: dict, root: Path = ROOT) -> bool:
    """Whether ``result`` is stale and was acknowledged so (``results.py stale``) with its
    measured files as they are now."""
    ack = result.get("stale")
    if not ack or result.get("quoted"):
        return False
    now = fingerprint(result["measures"], root)
    return now != (result.get("fingerprint") or {}) and now == ack.get("fingerprint")


def acknowledge(name: str, why: str, folder: Path = RESULTS, root: Path = ROOT) -> str:
    """Record that result ``name`` is stale and why it is not measured again now: the
    measured files as they are at HEAD (committed) and the reason. Its README section must
    then say so (``readme_problems``); the next change to those files fails the check."""
    r = load(name, folder)
    problems = stale({**r, "stale": None}, root)
    if not problems:
        raise SystemExit(f"{name} is fresh: nothing to acknowledge")
    dirty = uncommitted(expand(r["measures"], root), root)
    if dirty:
        raise SystemExit(f"commit {', '.join(dirty)} first: a stale mark names a commit")
    now = fingerprint(r["measures"], root)
    then = r.get("fingerprint") or {}
    r["stale"] = {
        "since": git("rev-parse", "HEAD", root=root),
        "changed": sorted(f for f in set(now) | set(then) if now.get(f) != then.get(f)),
        "why": why,
        "fingerprint": now,
    }
    (folder / f"{name}.json").write_text(
        json.dumps(r, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return (
        f"{name}: stale since {str(r['stale']['since'])[:7]} ({len(r['stale']['changed'])} files)"
    )


def in_history(commit: str | None, root: Path = ROOT) -> bool | None:
    """Whether ``commit`` is HEAD or one of its ancestors; None when git cannot tell here
    (no git, not a repository, or a shallow clone)."""
    if git("rev-parse", "--is-shallow-repository", root=root) != "false":
        return None
    if not commit:
        return False
    r = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, "HEAD"],
        cwd=root, capture_output=True, check=False,
    )  # fmt: skip
    return r.returncode == 0


# ── The README's figures ───────────────────────────────────────────────────────
RESULT_REF = re.compile(r"bench/results/([a-z0-9][a-z0-9_-]*)\.json")


def figure_sections(readme: str) -> list[tuple[str, str]]:
    """``(title, text)`` of every ``###`` section of the README's ``## Benchmarks``: each
    is one figure (a table or a few numbers) with the results it quotes."""
    m = re.search(r"^## Benchmarks\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    if not m:
        return []
    parts = re.split(r"^### ", m.group(1), flags=re.M)[1:]
    return [(p.split("\n", 1)[0].strip(), p) for p in parts]


def readme_problems(readme: str, folder: Path = RESULTS, root: Path = ROOT) -> list[str]:
    """What is wrong with the README's figures: a figure that names no result file, a
    result that is missing, a command or commit the figure does not name, a stale result,
    a commit outside this history, a result no figure quotes, a quoted (other machine)
    figure that does not say so or name its card."""
    results = all_results(folder) if folder.is_dir() else {}
    out: list[str] = []
    quoted_names: set[str] = set()
    for title, text in figure_sections(readme):
        names = list(dict.fromkeys(RESULT_REF.findall(text)))
        if not names:
            out.append(f"figure {title!r} names no result file (bench/results/<name>.json)")
        for name in names:
            quoted_names.add(name)
            r = results.get(name)
            if r is None:
                out.append(f"figure {title!r}: bench/results/{name}.json does not exist")
                continue
            if f"`{r.get('command')}`" not in text:
                out.append(f"figure {title!r} does not name the command `{r.get('command')}`")
            if r.get("quoted"):
                card = (r.get("machine") or {}).get("gpu") or ""
                if "quoted" not in text.lower() or not card or card.split(",")[0] not in text:
                    out.append(
                        f"figure {title!r} quotes {name} (measured elsewhere): say 'quoted' and "
                        f"name the card ({card or 'the result names none'})"
                    )
                continue
            commit = str(r.get("commit") or "")
            if not commit or commit[:7] not in text:
                out.append(
                    f"figure {title!r} does not name the commit {commit[:7] or '?'} of {name}"
                )
            problems = stale(r, root)
            out += [f"figure {title!r}: {w}" for w in problems]
            ack = r.get("stale")
            if ack and not problems and acknowledged(r, root):
                since = str(ack.get("since") or "")
                if "stale" not in text.lower() or not since or since[:7] not in text:
                    out.append(
                        f"figure {title!r}: {name} is stale (its measured code changed at "
                        f"{since[:7]}): the section must say 'Stale', name {since[:7]} and why"
                    )
                if in_history(since, root) is False:
                    out.append(
                        f"figure {title!r}: {name} was acknowledged stale at {since[:7]}, which "
                        "is not in this branch's history: `uv run python bench/results.py "
                        f"restamp`, or run `{r.get('command')}` again"
                    )
                continue
            if in_history(commit, root) is False:
                out.append(
                    f"figure {title!r}: {name} was measured at {commit[:7]}, which is not in this "
                    "branch's history (rebased?): `uv run python bench/results.py restamp` moves "
                    f"it when the measured files are unchanged, else run `{r.get('command')}` again"
                )
    for name in sorted(set(results) - quoted_names):
        out.append(f"bench/results/{name}.json is quoted by no figure in the README's Benchmarks")
    return out


def restamp(folder: Path = RESULTS, root: Path = ROOT) -> list[str]:
    """After a rebase: a result whose commit left this branch's history but whose measured
    files are byte-identical to HEAD's is moved to HEAD (``restamped_from`` keeps the old
    commit), and so is the commit its README figure names; the others are listed to run
    again. Commit the result files and the README afterwards."""
    head = git("rev-parse", "HEAD", root=root) or ""
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    moved: dict[str, str] = {}
    out = []
    for name, r in all_results(folder).items():
        ack = r.get("stale")
        if ack and acknowledged(r, root) and in_history(ack.get("since"), root) is False:
            if uncommitted(list(ack["fingerprint"]), root):
                out.append(f"{name}: commit the measured files first")
                continue
            old = ack["since"]
            ack["since"] = head
            (folder / f"{name}.json").write_text(
                json.dumps(r, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            moved[name] = old
            out.append(f"{name}: stale since {old[:7]} -> {head[:7]} (measured files identical)")
            continue
        if r.get("quoted") or ack or in_history(r.get("commit"), root) is not False:
            continue
        if stale(r, root) or uncommitted(list(r["fingerprint"]), root):
            out.append(f"{name}: measured files changed; run `{r['command']}` again")
            continue
        old = r["commit"]
        r["restamped_from"] = [*r.get("restamped_from", []), old]
        r["commit"] = head
        (folder / f"{name}.json").write_text(
            json.dumps(r, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        moved[name] = old
        out.append(f"{name}: {old[:7]} -> {head[:7]} (measured files identical)")
    for _title, section in figure_sections(text):
        new = section
        for name in set(RESULT_REF.findall(section)) & set(moved):
            new = new.replace(moved[name][:7], head[:7])
        if new != section:
            text = text.replace(section, new, 1)
    readme.write_text(text, encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["restamp"]:
        for line in restamp():
            print(line)
        return 0
    if len(args) == 3 and args[0] == "stale":
        print(acknowledge(args[1], args[2]))
        return 0
    if args == ["check"]:
        problems = readme_problems((ROOT / "README.md").read_text(encoding="utf-8"))
        for name, r in all_results().items():
            if r.get("quoted"):
                print(f"{name}: quoted (measured elsewhere, {r.get('measured_at')})")
            elif acknowledged(r):
                print(f"{name}: stale, acknowledged at {str(r['stale']['since'])[:7]}")
            elif not stale(r):
                print(f"{name}: fresh ({str(r.get('commit'))[:7]})")
        for p in problems:
            print(p)
        return 1 if problems else 0
    print('usage: uv run python bench/results.py check|restamp|stale NAME "why"', file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
