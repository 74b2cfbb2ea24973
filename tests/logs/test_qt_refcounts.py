"""Guard against the PySide6/shiboken6 6.12.0 bug that aborts Python 3.11 under a log flood.

There, every C++ call returning void hands back ``None`` without a reference and every
``Signal.emit()`` does the same with ``True``; after a few thousand calls the interpreter
aborts ("none_dealloc"). 100 calls are safe to make and show the drift.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer, Signal


class _Emitter(QObject):
    fired = Signal(object)


def test_void_calls_and_emits_keep_none_and_true_alive(qapp) -> None:
    timer = QTimer()
    emitter = _Emitter()
    got: list[object] = []
    emitter.fired.connect(got.append)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for i in range(100):
        timer.start(1000)
        timer.stop()
        emitter.fired.emit(i)
    none_drift = sys.getrefcount(None) - none_before
    true_drift = sys.getrefcount(True) - true_before
    assert len(got) == 100
    assert none_drift >= 0 and true_drift >= 0, (
        f"PySide6 loses references (None {none_drift}, True {true_drift} per 100 calls); "
        "this version aborts Python 3.11 after a few thousand calls: pin another one"
    )
