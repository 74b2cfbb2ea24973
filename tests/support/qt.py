"""Qt test helpers shared by the qasync loop fixtures."""

from __future__ import annotations

import gc


def kill_loop_timers(loop) -> None:
    """qasync 0.28's timer ``stop()`` only sets a flag: a closed loop's pending timers
    would still fire later, in an unrelated test. Kill them."""
    timer = getattr(loop, "_timer", None)
    callbacks = getattr(timer, "_SimpleTimer__callbacks", None)
    if timer is None or callbacks is None:
        return
    for tid in list(callbacks):
        timer.killTimer(tid)
    callbacks.clear()


def collect_qt_garbage(qapp, loop=None) -> None:
    """Destroy the test's dead Qt objects now, on the GUI thread.

    Left to the cyclic garbage collector, a QObject (a qasync timer, a widget) can be
    destroyed later on whatever thread happens to trigger a collection (an executor
    worker, a child watcher); its timers then stay registered on the GUI thread and the
    next ``processEvents`` delivers to freed memory. Collect here, then run the deferred
    deletes, while everything is still on the right thread.
    """
    from PySide6.QtCore import QCoreApplication, QEvent

    if loop is not None:
        kill_loop_timers(loop)
    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    qapp.processEvents()
