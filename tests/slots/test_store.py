"""The saved slots on disk: the budget deletes the least recently used first (a restore
counts as a use), a model keeps at most as many files as it has slots, strays of a cut-short
save are deleted once old, and the index survives a restart of the app."""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.core.slots.keeper import DEFAULT_BUDGET, MIB, default_budget
from app.core.slots.store import STRAY_AGE, SavedSlot, SlotStore


def saved(store: SlotStore, fp: str, size: int, at: float) -> SavedSlot:
    """A file as llama-server would have written it, and its entry."""
    name = store.new_name(fp, 0)
    store.ensure_folder()
    (store.folder / name).write_bytes(b"k" * size)
    return SavedSlot(name, fp, "/m.gguf", 300, size, at, at)


def names(store: SlotStore) -> set[str]:
    return {e.name for e in store.entries()}


def files(store: SlotStore) -> set[str]:
    return {p.name for p in store.folder.glob("*.slot")}


def test_the_budget_deletes_the_least_recently_used_first(tmp_path: Path) -> None:
    budget = [250]
    store = SlotStore(tmp_path / "slots", lambda: budget[0])
    a, b, c = (saved(store, fp, 100, t) for fp, t in (("a", 1.0), ("b", 2.0), ("c", 3.0)))
    assert store.add(a) == [] and store.add(b) == []
    store.touch(a.name, now=4.0)  # restored: now the most recently used
    assert store.add(c) == [b]
    assert names(store) == files(store) == {a.name, c.name}
    budget[0] = 150  # a smaller SLOT_CACHE_MB takes effect at the next change
    assert [e.name for e in store.prune()] == [c.name]
    assert names(store) == files(store) == {a.name}
    # a file over the whole budget is not kept either
    big = saved(store, "d", 1000, 5.0)
    assert big in store.add(big) and big.name not in files(store)


def test_a_model_keeps_at_most_one_file_per_slot(tmp_path: Path) -> None:
    store = SlotStore(tmp_path / "slots", lambda: 10**9)
    olds = [saved(store, "fp", 10, float(t)) for t in range(3)]
    other = saved(store, "other", 10, 0.5)
    for e in [*olds, other]:
        store.add(e, keep_per_fingerprint=2)
    assert names(store) == {olds[1].name, olds[2].name, other.name}
    assert [e.name for e in store.matching("fp")] == [olds[2].name, olds[1].name]


def test_the_index_survives_a_restart_and_strays_are_deleted(tmp_path: Path) -> None:
    store = SlotStore(tmp_path / "slots", lambda: 10**9)
    kept = saved(store, "fp", 10, 1.0)
    store.add(kept)
    stray_old = store.folder / "cut-short-old.slot"
    stray_new = store.folder / "being-written.slot"
    for f in (stray_old, stray_new):
        f.write_bytes(b"partial")
    old = time.time() - STRAY_AGE - 10
    os.utime(stray_old, (old, old))
    again = SlotStore(tmp_path / "slots", lambda: 10**9)
    assert again.matching("fp") == [kept]
    assert files(again) == {kept.name, stray_new.name}  # a save may still be writing it
    # an entry whose file is gone is forgotten
    (again.folder / kept.name).unlink()
    assert SlotStore(tmp_path / "slots", lambda: 10**9).entries() == []


def test_an_unreadable_index_is_ignored(tmp_path: Path, caplog) -> None:
    store = SlotStore(tmp_path / "slots", lambda: 10**9)
    store.ensure_folder()
    store.index_path.write_text("{not json")
    assert store.entries() == [] and "unreadable slot index" in caplog.text


def test_the_default_budget_holds_four_full_slots_of_the_largest_model() -> None:
    assert default_budget([]) == default_budget([0]) == DEFAULT_BUDGET
    assert default_budget([100 * MIB, 300 * MIB]) == 1200 * MIB
    assert default_budget([1]) == 256 * MIB  # never less
    assert default_budget([10 * 1024 * MIB]) == 16 * 1024 * MIB  # never more
