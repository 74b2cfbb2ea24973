"""Failure reasons in words, from the messages the app answers a failed load with (recorded
from real failures), and the report's table and JSON."""

from __future__ import annotations

import pytest

from app.core.check.reasons import reason_words
from app.core.check.report import FAIL, PASS, SKIP, CheckRow, Report, size_words, table_text

LOG = "Read /home/u/.local/state/familylog-tray/log/llama-server-8081.log\nLast lines:\n"


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (
            "Cannot load qwen/qwen3-vl-8b: mmproj file not found: /m/mmproj-q.gguf",
            "missing file: /m/mmproj-q.gguf",
        ),
        (
            "Cannot load x: llama-server on port 8081 exited with code -4 (SIGILL: this "
            "llama-server build uses CPU instructions this processor lacks; use a build made "
            "for this CPU) while loading /m/x.gguf. " + LOG,
            "crashed with SIGILL: this llama-server build uses CPU instructions this processor "
            "lacks; use a build made for this CPU",
        ),
        (
            "llama-server on port 8081 exited with code -9 (SIGKILL: most likely the system ran "
            "out of memory while loading the model) while loading /m/x.gguf. " + LOG,
            "out of memory",
        ),
        (
            "llama-server on port 8081 exited with code 1 while loading /m/x.gguf. "
            + LOG
            + "0.01.2 E ggml_vulkan: Device memory allocation of size 4294967296 failed.\n"
            "0.01.2 E ggml_vulkan: vk::Device::allocateMemory: ErrorOutOfDeviceMemory",
            "out of memory",
        ),
        (
            "llama-server on port 8081 did not become ready within 120 s and was stopped. "
            "Read /x.log",
            "not ready after 120 s",
        ),
        (
            "llama-server on port 8081 exited with code 2 while loading /m/x.gguf. "
            + LOG
            + "error: invalid argument: --flash-attn",
            "llama-server stopped with exit code 2",
        ),
        ("Something new went wrong\nsecond line", "Something new went wrong"),
    ],
)
def test_reasons_in_words(message: str, words: str) -> None:
    assert reason_words(message) == words


def test_the_table_names_each_model_once_and_counts_failures() -> None:
    report = Report(
        [
            CheckRow("a/model", "load", PASS, "1.2 s, 4.1 GiB VRAM"),
            CheckRow("a/model", "chat", FAIL, "no answer"),
            CheckRow("b", "load", FAIL, "missing file: /m/b.gguf"),
            CheckRow("b", "unload", SKIP, "not run: the model did not load"),
        ]
    )
    lines = table_text(report).splitlines()
    assert lines[0].split() == ["MODEL", "CHECK", "RESULT", "DETAIL"]
    assert lines[2].startswith("a/model  load ") and lines[3].startswith("         chat ")
    assert lines[4].startswith("b        load    fail    missing file: /m/b.gguf")
    assert lines[-1] == "2 checks failed."
    data = report.json()
    assert data["ok"] is False and data["checks"][1] == {
        "subject": "a/model",
        "check": "chat",
        "result": "fail",
        "detail": "no answer",
    }
    assert Report([CheckRow("a", "load", PASS, "")]).ok
    assert not Report([]).ok  # nothing checked is no pass


def test_sizes_in_words() -> None:
    assert size_words(None) == "memory unknown"
    assert size_words(35_000_000, "ram") == "33.4 MiB RAM"
    assert size_words(5 * 1024**3, "vram") == "5.0 GiB VRAM"
    assert size_words(512 * 1024**2) == "512 MiB"
