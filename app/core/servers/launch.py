"""What a llama-server launch needs before and around the spawn: the files checked with a
message a person can act on, the child's environment, and the errors a launch raises."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from app.core.servers.keys import CORS_ORIGIN
from app.core.servers.server_log import NOTE_PREFIX, START_MARK, last_output, tail_lines
from app.core.servers.states import LaunchSpec


class ServerExitedError(RuntimeError):
    """llama-server exited before it became ready."""

    def __init__(self, message: str, exit_code: int | None, log_path: Path) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.log_path = log_path


def check_launch_files(server_path: str, spec: LaunchSpec) -> None:
    """The binary, the model and the mmproj must exist (and the binary run), else an error
    naming the path."""
    binary = Path(server_path)
    if not binary.is_file():
        raise FileNotFoundError(
            f"llama-server not found: {binary}. Set LLAMA_SERVER_PATH to the binary."
        )
    if not os.access(binary, os.X_OK):
        raise PermissionError(
            f"llama-server at {binary} is not executable. Run: chmod +x '{binary}'"
        )
    if not Path(spec.model_path).is_file():
        raise FileNotFoundError(f"Model file not found: {spec.model_path}")
    if spec.mmproj and not Path(spec.mmproj).is_file():
        raise FileNotFoundError(f"mmproj file not found: {spec.mmproj}")


def child_env(base: dict[str, str] | None, key: str | None, prefix: str = "") -> dict[str, str]:
    """The server's environment: its key travels as ``LLAMA_API_KEY``, not on the
    command line, where every user of the machine could read it (``ps``); a stray
    ``LLAMA_API_KEY`` of the user's own never reaches a server the app did not key. A
    private server serves under ``prefix`` (see ``keys``); every one allows no web page's
    origin and no credentials."""
    env = dict(os.environ if base is None else base)
    env.pop("LLAMA_API_KEY", None)
    env.pop("LLAMA_ARG_API_PREFIX", None)
    if key:
        env["LLAMA_API_KEY"] = key
    if prefix:
        env["LLAMA_ARG_API_PREFIX"] = prefix
    env["LLAMA_ARG_CORS_ORIGINS"] = CORS_ORIGIN
    env["LLAMA_ARG_CORS_CREDENTIALS"] = "false"
    return env


# What a signal that ends a llama-server usually means, in words a person can act on.
_SIGNAL_MEANING = {
    "SIGILL": "this llama-server build uses CPU instructions this processor lacks; "
    "use a build made for this CPU",
    "SIGSEGV": "llama-server crashed; its log names the file it was reading",
    "SIGABRT": "llama-server stopped itself on an internal error; read its log",
    "SIGBUS": "the model file changed or went away while it was being read",
}
_KILLED_WHILE_LOADING = "most likely the system ran out of memory while loading the model"
# llama-server loads the text model, then the projector, and logs this line when both are in.
PROJECTOR_LOADED = "loaded multimodal model"


def broken_projector(mmproj: str) -> str:
    """What a crash while loading a model with a projector most likely means: a projector file
    that lacks tensors crashes llama-server without a word (its buffered log is lost)."""
    return (
        f"the projector file {mmproj} is most likely broken (incomplete, or made for another "
        "model or llama.cpp version); download the model's mmproj file again"
    )


def signal_words(code: int | None, *, loading: bool, mmproj: str | None = None) -> str:
    """For an exit code that is a signal (-4): `` (SIGILL: <what it usually means>)``;
    else ``""``. ``mmproj``: the projector being loaded, blamed for a crash (SIGSEGV, SIGBUS,
    SIGABRT) while loading."""
    if code is None or code >= 0:
        return ""
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return ""
    meaning = _SIGNAL_MEANING.get(name)
    if name == "SIGKILL" and loading:
        meaning = _KILLED_WHILE_LOADING
    if mmproj and loading and name in ("SIGSEGV", "SIGBUS", "SIGABRT"):
        meaning = broken_projector(mmproj)
    return f" ({name}: {meaning})" if meaning else f" ({name})"


def projector_loaded(log_path: Path) -> bool:
    """Whether the latest start's log says the projector was loaded."""
    lines = tail_lines(log_path, 400)
    starts = [i for i, ln in enumerate(lines) if ln.startswith(NOTE_PREFIX) and START_MARK in ln]
    return any(PROJECTOR_LOADED in ln for ln in lines[starts[-1] if starts else 0 :])


def exit_message(what: str, log_path: Path) -> str:
    """Why a server is gone, with the log to read and its own last lines (errors first)."""
    lines = "\n".join(last_output(log_path, 5))
    return f"{what}. Read {log_path}" + (f"\nLast lines:\n{lines}" if lines else "")
