"""Qt test helpers shared by the qasync loop fixtures."""

from __future__ import annotations

import gc


def collect_qt_garbage(qapp) -> None:
    """Destroy the test's dead Qt objects now, on the GUI thread.

    Left to the cyclic garbage collector, a QObject (a qasync timer, a widget) can be
    destroyed later on whatever thread happens to trigger a collection (an executor
    worker, a child watcher); its timers then stay registered on the GUI thread and the
    next ``processEvents`` delivers to freed memory. Collect here, then run the deferred
    deletes, while everything is still on the right thread.
    """
    from PySide6.QtCore import QCoreApplication, QEvent

    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    qapp.processEvents()
