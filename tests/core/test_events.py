"""``Listeners``: every listener is told in order, a failing one is logged and the rest are
still told, and a listener can stop listening (itself or another) while it is told."""

from __future__ import annotations

import logging

from app.core.events import Listeners


def test_each_listener_is_told_in_order_until_it_stops() -> None:
    told: list[tuple[str, int]] = []
    numbers: Listeners[int] = Listeners("numbers")
    stop_a = numbers.add(lambda n: told.append(("a", n)))
    numbers.add(lambda n: told.append(("b", n)))
    numbers.emit(1)
    stop_a()
    stop_a()  # twice is harmless
    numbers.emit(2)
    assert told == [("a", 1), ("b", 1), ("b", 2)]
    assert len(numbers) == 1


def test_a_failing_listener_is_logged_and_the_others_are_still_told(caplog) -> None:
    told: list[str] = []
    changes: Listeners[[]] = Listeners("catalogue changes")

    def broken() -> None:
        raise ValueError("boom")

    changes.add(broken)
    changes.add(lambda: told.append("after"))
    with caplog.at_level(logging.ERROR, logger="app.core.events"):
        changes.emit()
    assert told == ["after"]
    [record] = caplog.records
    assert "catalogue changes" in record.getMessage() and record.exc_info[0] is ValueError


def test_a_listener_may_stop_listening_while_it_is_told() -> None:
    told: list[str] = []
    words: Listeners[str] = Listeners("words")

    def once(word: str) -> None:
        told.append(f"once:{word}")
        stop()

    stop = words.add(once)
    words.add(lambda w: told.append(f"always:{w}"))
    words.emit("x")
    words.emit("y")
    assert told == ["once:x", "always:x", "always:y"]
