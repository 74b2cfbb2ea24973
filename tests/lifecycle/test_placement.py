"""Placement as a pure function, on tables: no processes, no sockets."""

from __future__ import annotations

import pytest

from app.core.discovery.gguf_info import read_gguf_info
from app.core.lifecycle.placement import (
    SAFETY_FACTOR,
    Decision,
    Free,
    Policy,
    Running,
    Target,
    Worker,
    estimate_need,
    place,
)
from app.core.models.entry import ModelEntry
from app.core.presets.fields import ModelPreset
from tests.support.tiny_model import write_tiny_model

GB = 1024**3


def run(
    key: str, port: int, need: float = 1, used: float = 0, flying: int = 0, held=False, pin=False
):
    return Running(key, port, int(need * GB), flying, held, used, pinned=pin)


A = run("a", 9001, need=4, used=10)
B = run("b", 9002, need=6, used=20)
C = run("c", 9003, need=2, used=30)
PA = run("a", 9001, need=4, used=10, pin=True)


@pytest.mark.parametrize(
    ("target", "running", "free_gb", "policy", "port", "evict", "wait"),
    [
        # switch: one model at a time on LLAMA_PORT, everything else goes
        (Target("x", GB), [A, B], None, Policy("switch", 8080), 8080, {"a", "b"}, set()),
        (Target("x", GB), [], None, Policy("switch", 8080), 8080, set(), set()),
        # switch: a busy instance is never evicted: wait for it
        (
            Target("x", GB),
            [A, run("b", 9002, flying=2)],
            None,
            Policy("switch", 8080),
            8080,
            {"a", "b"},
            {"b"},
        ),
        # switch, but a run needs it beside the others: its role port, nothing evicted
        (Target("x", GB, 9100, beside=True), [A], None, Policy("switch"), 9100, set(), set()),
        # parallel: a role on its port, other models on a free port, nothing evicted
        (Target("x", GB, 9100), [A, B], None, Policy("parallel"), 9100, set(), set()),
        (Target("x", GB), [A, B], None, Policy("parallel"), None, set(), set()),
        # parallel: whatever sits on the role's port goes
        (Target("x", GB, 9001), [A, B], None, Policy("parallel"), 9001, {"a"}, set()),
        # auto: fits in free memory: beside the others
        (Target("x", 3 * GB), [A, B], 5, Policy("auto"), None, set(), set()),
        # auto: does not fit: evict least recently used idle first (a, then b)
        (Target("x", 8 * GB), [A, B, C], 5, Policy("auto"), None, {"a"}, set()),
        (Target("x", 14 * GB), [A, B, C], 5, Policy("auto"), None, {"a", "b"}, set()),
        # auto: the LRU one is busy: skip it, evict the next idle one
        (
            Target("x", 8 * GB),
            [run("a", 9001, 4, 10, flying=1), B, C],
            5,
            Policy("auto"),
            None,
            {"b"},
            set(),
        ),
        # auto: only the busy one can make room: wait for it
        (
            Target("x", 9 * GB),
            [run("a", 9001, 4, 10, held=True), C],
            5,
            Policy("auto"),
            None,
            {"c"},
            {"a"},
        ),
        # auto: nothing can make room: evict all idle, load anyway
        (Target("x", 100 * GB), [A, C], 5, Policy("auto"), None, {"a", "c"}, set()),
        # auto, memory unknown: beside the others
        (Target("x", 100 * GB), [A], None, Policy("auto"), None, set(), set()),
        # cap: MAX_LOADED_MODELS=2 with two loaded: the LRU idle one goes
        (Target("x", GB), [A, B], 100, Policy("auto", max_loaded=2), None, {"a"}, set()),
        (
            Target("x", GB),
            [A, B, C],
            None,
            Policy("parallel", max_loaded=2),
            None,
            {"a", "b"},
            set(),
        ),
        # cap, all busy: wait
        (
            Target("x", GB),
            [run("a", 1, flying=1), run("b", 2, held=True)],
            None,
            Policy("parallel", max_loaded=2),
            None,
            set(),
            {"a", "b"},
        ),
        # the target's own running instance is never counted as another model
        (Target("a", GB), [A], None, Policy("switch", 8080), 8080, set(), set()),
        # pinned (its preset): never evicted, never waited for
        (Target("x", GB), [PA, B], None, Policy("switch", 8080), 8080, {"b"}, set()),
        # switch: a pinned model holds the one port: load beside it on a free port
        (
            Target("x", GB),
            [run("p", 8080, pin=True), B],
            None,
            Policy("switch", 8080),
            None,
            {"b"},
            set(),
        ),
        # parallel: a pinned model on the role's port stays; the role loads on a free port
        (Target("x", GB, 9001), [PA, B], None, Policy("parallel"), None, set(), set()),
        # auto: the least recently used one is pinned: the next idle one goes
        (Target("x", 8 * GB), [PA, B, C], 5, Policy("auto"), None, {"b"}, set()),
        # auto: only the pinned one could make room: load anyway, no wait
        (Target("x", 9 * GB), [PA, C], 5, Policy("auto"), None, {"c"}, set()),
        (
            Target("x", 9 * GB),
            [run("a", 9001, 4, 10, held=True, pin=True), C],
            5,
            Policy("auto"),
            None,
            {"c"},
            set(),
        ),
        # cap: a pinned one is never the one to go: over the cap rather than evict it;
        # a busy one that is not pinned is waited for
        (Target("x", GB), [PA], None, Policy("parallel", max_loaded=1), None, set(), set()),
        (Target("x", GB), [PA, B], None, Policy("parallel", max_loaded=2), None, {"b"}, set()),
        (
            Target("x", GB),
            [PA, run("b", 2, flying=1)],
            None,
            Policy("parallel", max_loaded=2),
            None,
            set(),
            {"b"},
        ),
    ],
)
def test_place(target, running, free_gb, policy, port, evict, wait) -> None:
    free = Free(int(free_gb * GB)) if free_gb is not None else None
    d = place(target, running, free, policy)
    assert isinstance(d, Decision)
    assert (d.port, set(d.evict), set(d.wait_for)) == (port, evict, wait), d.reason
    assert d.waits == bool(wait)


def test_busy_reasons_say_who_and_how_many() -> None:
    d = place(Target("x"), [run("b", 2, flying=3)], None, Policy("switch", 8080))
    assert d.busy == ("b is serving 3 requests",)
    d = place(Target("x"), [run("b", 2, held=True)], None, Policy("switch", 8080))
    assert d.busy == ("b is held by a FamilyLog run",)


def test_auto_reason_names_the_memory() -> None:
    d = place(Target("x", GB), [], Free(4 * GB, "available RAM"), Policy("auto"))
    assert "available RAM" in d.reason and not d.evict


def test_the_reasons_name_the_pinned_model() -> None:
    d = place(Target("x"), [run("p", 8080, pin=True)], None, Policy("switch", 8080))
    assert (
        d.reason
        == "RUN_MODE=switch: one model at a time besides the pinned p, which holds port 8080"
    )
    d = place(Target("x"), [PA], None, Policy("parallel", max_loaded=1))
    assert d.reason.endswith("MAX_LOADED_MODELS=1, exceeded: the pinned a stays")


def test_the_estimate_weighs_the_kv_cache_type_and_the_draft_model(tmp_path) -> None:
    path = write_tiny_model(tmp_path / "m.gguf")
    draft = write_tiny_model(tmp_path / "d.gguf", seed=1)
    info = read_gguf_info(path)
    entry = ModelEntry(key="m", path=str(path), info=info)
    f16 = estimate_need(entry, 2048)
    kv_f16 = info.kv_cache_bytes(2048)
    q8 = estimate_need(entry, 2048, ModelPreset(cache_type_k="q8_0", cache_type_v="q8_0"))
    kv_q8 = info.kv_cache_bytes(2048, 34 / 32)  # q8_0: 34 bytes a block of 32
    assert kv_q8 < kv_f16 and abs((f16 - q8) - (kv_f16 - kv_q8) * SAFETY_FACTOR) <= 2
    assert estimate_need(entry, 2048, ModelPreset()) == f16
    with_draft = estimate_need(entry, 2048, ModelPreset(model_draft=str(draft)))
    assert abs(with_draft - f16 - draft.stat().st_size * SAFETY_FACTOR) <= 2


# ── RPC workers: other machines' memory, counted as this machine's ──────────────
W1 = Worker("10.0.0.2:50052", 8 * GB)  # the roomier one
W2 = Worker("10.0.0.3:50052", 4 * GB)
DOWN = Worker("10.0.0.4:50052", 0, "is offline: connection refused")
BUSY = Worker("10.0.0.5:50052", 0, "is in use by big-model")


def named(*addresses: str) -> tuple[str, ...]:
    return tuple(addresses)


@pytest.mark.parametrize(
    ("target", "running", "free_gb", "policy", "workers", "rpc", "evict", "refused"),
    [
        # auto, fits here: the workers are not used
        (Target("x", 3 * GB), [], 5, Policy("auto"), [W1, W2], (), set(), False),
        # auto, fits here once an idle model goes: here, as without workers
        (Target("x", 8 * GB), [A], 5, Policy("auto"), [W1, W2], (), {"a"}, False),
        # auto, too big for here alone: the roomiest worker is enough
        (Target("x", 12 * GB), [], 5, Policy("auto"), [W2, W1], (W1.address,), set(), False),
        # auto: needs both workers
        (
            Target("x", 16 * GB),
            [],
            5,
            Policy("auto"),
            [W1, W2],
            (W1.address, W2.address),
            set(),
            False,
        ),
        # auto: an idle model goes and one worker is enough
        (Target("x", 16 * GB), [A], 5, Policy("auto"), [W1], (W1.address,), {"a"}, False),
        # auto: not even every worker makes it fit: here, as without workers
        (Target("x", 40 * GB), [A], 5, Policy("auto"), [W1, W2], (), {"a"}, False),
        # auto: a worker that is offline or in use counts for nothing
        (Target("x", 12 * GB), [], 5, Policy("auto"), [DOWN, BUSY], (), set(), False),
        (Target("x", 12 * GB), [], 5, Policy("auto"), [DOWN, W1], (W1.address,), set(), False),
        # auto, free memory unknown: nothing weighed, no workers
        (Target("x", 40 * GB), [], None, Policy("auto"), [W1], (), set(), False),
        # parallel / switch: workers only when the model's settings name them
        (Target("x", 40 * GB), [], None, Policy("parallel"), [W1], (), set(), False),
        (
            Target("x", GB, rpc=named(W1.address)),
            [A],
            None,
            Policy("switch", 8080),
            [W1],
            (W1.address,),
            {"a"},
            False,
        ),
        # named workers: used even where the model would fit here
        (
            Target("x", GB, rpc=named(W1.address, W2.address)),
            [],
            5,
            Policy("auto"),
            [W1, W2],
            (W1.address, W2.address),
            set(),
            False,
        ),
        # named workers, one lost: the rest, when the model fits on them and here
        (
            Target("x", 10 * GB, rpc=named(DOWN.address, W1.address)),
            [],
            5,
            Policy("auto"),
            [DOWN, W1],
            (W1.address,),
            set(),
            False,
        ),
        # named workers, one lost: here alone, when it fits here
        (
            Target("x", 3 * GB, rpc=named(DOWN.address)),
            [],
            5,
            Policy("auto"),
            [DOWN],
            (),
            set(),
            False,
        ),
        # named workers, one lost, and what is left is too small: refused, naming it
        (
            Target("x", 12 * GB, rpc=named(DOWN.address)),
            [],
            5,
            Policy("auto"),
            [DOWN],
            (),
            set(),
            True,
        ),
        # named workers, all there but too small: loaded anyway, as auto does here
        (
            Target("x", 40 * GB, rpc=named(W1.address)),
            [],
            5,
            Policy("auto"),
            [W1],
            (W1.address,),
            set(),
            False,
        ),
        # named workers, one lost, memory not weighed (parallel): the rest, never refused
        (
            Target("x", 40 * GB, rpc=named(DOWN.address, W2.address)),
            [],
            None,
            Policy("parallel"),
            [DOWN, W2],
            (W2.address,),
            set(),
            False,
        ),
    ],
)
def test_place_with_workers(target, running, free_gb, policy, workers, rpc, evict, refused):
    free = Free(int(free_gb * GB)) if free_gb is not None else None
    d = place(target, running, free, policy, workers)
    assert (d.rpc, set(d.evict), bool(d.refused)) == (rpc, evict, refused), d.reason
    assert not d.waits
    if refused:
        assert DOWN.address in d.refused and "connection refused" in d.refused, d.refused


def test_without_workers_placement_is_what_it_was() -> None:
    for target, running, free in [
        (Target("x", 8 * GB), [A, B, C], Free(5 * GB)),
        (Target("x", 100 * GB), [A, C], Free(5 * GB)),
        (Target("x", 9 * GB), [run("a", 9001, 4, 10, held=True), C], Free(5 * GB)),
    ]:
        assert place(target, running, free, Policy("auto"), []) == place(
            target, running, free, Policy("auto")
        )


def test_a_wait_for_a_busy_model_gives_way_to_workers_that_make_it_fit() -> None:
    """Here, only waiting for a busy model would make room; a worker makes it fit now."""
    held = run("a", 9001, 4, 10, held=True)
    d = place(Target("x", 9 * GB), [held, C], Free(5 * GB), Policy("auto"), [W1])
    assert d.rpc == (W1.address,) and not d.waits, d.reason


def test_the_reason_says_which_workers_and_why_others_are_left_out() -> None:
    d = place(Target("x", 12 * GB), [], Free(5 * GB, "free GPU memory"), Policy("auto"), [W1])
    assert W1.address in d.reason and "free GPU memory" in d.reason
    t = Target("x", 2 * GB, rpc=named(DOWN.address, BUSY.address, W2.address))
    d = place(t, [], Free(5 * GB), Policy("auto"), [DOWN, BUSY, W2])
    assert "connection refused" in d.reason and "in use by big-model" in d.reason
    assert d.rpc == (W2.address,)
    d = place(Target("x", GB, rpc=named("10.9.9.9:1")), [], Free(5 * GB), Policy("auto"), [])
    assert "10.9.9.9:1 is not checked" in d.reason and d.rpc == ()
