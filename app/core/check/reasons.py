"""Why a model failed a check, in words a person can act on, read from the app's answer (its
load error carries llama-server's exit, the signal's meaning and its last log lines)."""

from __future__ import annotations

import re

# (pattern in the message, words): the first that matches names the reason.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), words)
    for p, words in (
        (r"(model|mmproj) file not found: (?P<path>.+)", "missing file: {path}"),
        (r"No model file set", "no model file set: choose one in Settings"),
        (
            r"mismatch between text model|you may be using wrong mmproj",
            "the projector (mmproj) does not match the model: it belongs to another model",
        ),
        (
            r"projector file (?P<path>\S+) is most likely broken",
            "broken projector file: llama-server crashed reading {path}",
        ),
        (
            r"out of (device )?memory|ErrorOutOfDeviceMemory|failed to allocate|cudaMalloc "
            r"failed|unable to allocate|SIGKILL: most likely the system ran out of memory",
            "out of memory",
        ),
        (r"\((?P<sig>SIG[A-Z]+): (?P<why>[^)]*)\)", "crashed with {sig}: {why}"),
        (r"\((?P<sig>SIG[A-Z]+)\)", "crashed with {sig}"),
        (r"did not become ready within (?P<s>[\d.]+) s", "not ready after {s} s"),
        (
            r"failed to load model|gguf_init_from_file|invalid magic|tensor .* data is not "
            r"within the file bounds",
            "the model file is damaged or not one llama-server can read",
        ),
        (r"exited with code (?P<code>-?\d+)", "llama-server stopped with exit code {code}"),
    )
)


def reason_words(message: str) -> str:
    """A short reason for a failure ``message``; its first line when none is known."""
    for pattern, words in _REASONS:
        m = pattern.search(message)
        if m:
            return words.format(**{k: v.strip() for k, v in m.groupdict().items() if v})
    first = message.strip().splitlines()[0] if message.strip() else "no reason given"
    return first if len(first) <= 200 else first[:197] + "…"
