"""The supervisor's delays at their real values, the ones the README promises, through a
clock the test moves by hand (``tests/support/clock.py``) and the real llama-server:
a crash is restarted after 1 s, 2 s, 4 s, and a fourth crash within 10 minutes is not
restarted; each ready server gets a health check every quarter of ``HUNG_PROBE_SECONDS``
(60 by default), and one unanswered for ``HUNG_PROBE_SECONDS`` means hung: restarted. The policy is the one the
app builds from its settings (no test policy), so a changed default fails here."""

from __future__ import annotations

import os
import signal

from app.core.models.entry import LLM
from app.core.servers.states import ServerState
from tests.support.app import alive, load_role, make_core, settings_for, supervisor, titles
from tests.support.clock import ManualClock
from tests.support.wait import until


async def _started(llama_server_bin, tiny_model, **over):
    clock = ManualClock()
    s = settings_for(llama_server_bin, LLM_MODEL_GGUF=str(tiny_model), **over)
    # the supervisor with the policy the app builds from the settings; no API, no runs
    core = make_core(s, None, supervise=True, clock=clock)
    await core.start()
    st = await load_role(core, LLM)
    return core, clock, st


def _said(core, text: str) -> bool:
    return any(text in n.text for n in core.notices.history)


async def _crash_and_see_the_delay(core, clock, port: int, delay: float, attempt: int) -> None:
    """SIGKILL the server; the restart waits exactly ``delay`` seconds on the clock."""
    pid = core.manager.status(port).pid
    os.kill(pid, signal.SIGKILL)
    due = clock.monotonic() + delay
    await until(lambda: clock.waits_until(due, "sleep"))
    assert _said(core, f"restarting it in {delay:g} s (attempt {attempt} of 3)")
    clock.advance(delay - 0.001)  # not yet
    assert clock.waits_until(due, "sleep") and core.manager.status(port).state is ServerState.FAILED
    clock.advance(0.001)
    await until(
        lambda: (
            core.manager.status(port).state is ServerState.READY
            and core.manager.status(port).pid != pid
        )
    )
    assert not alive(pid)


async def test_restarts_after_1_2_4_seconds_and_gives_up_on_the_fourth_in_10_minutes(
    llama_server_bin, tiny_model
) -> None:
    core, clock, st = await _started(llama_server_bin, tiny_model)  # RESTART_ON_CRASH default
    port = st.port
    try:
        for attempt, delay in enumerate((1.0, 2.0, 4.0), start=1):
            await _crash_and_see_the_delay(core, clock, port, delay, attempt)
        # a fourth crash 7 s after the first: more than 3 within 10 minutes
        os.kill(core.manager.status(port).pid, signal.SIGKILL)
        await until(lambda: any("Gave up" in t for t in titles(core)))
        assert _said(core, "failed 4 times within 10 min")
        assert core.manager.status(port).state is ServerState.FAILED
        assert not supervisor(core).pending_restart(port)
        assert [s for k, s in clock.asked if k == "sleep" and s < 30] == [1.0, 2.0, 4.0]
    finally:
        await core.stop()


async def test_a_crash_after_the_10_minute_window_starts_the_back_off_again(
    llama_server_bin, tiny_model
) -> None:
    core, clock, st = await _started(llama_server_bin, tiny_model)
    port = st.port
    try:
        crashed_at = []
        for attempt, delay in enumerate((1.0, 2.0, 4.0), start=1):
            crashed_at.append(clock.monotonic())
            await _crash_and_see_the_delay(core, clock, port, delay, attempt)
        assert [t - crashed_at[0] for t in crashed_at] == [0, 1, 3]
        # more than 10 minutes after the third crash, the three no longer count
        clock.advance(crashed_at[-1] + 600.5 - clock.monotonic())
        await _crash_and_see_the_delay(core, clock, port, 1.0, 1)
        assert not any("Gave up" in t for t in titles(core))
    finally:
        await core.stop()


async def test_hung_means_a_health_check_unanswered_for_hung_probe_seconds(
    llama_server_bin, tiny_model
):
    # HUNG_PROBE_SECONDS at its default (60); the tests' settings turn it off otherwise
    core, clock, st = await _started(llama_server_bin, tiny_model, HUNG_PROBE_SECONDS=60)
    assert core.settings.HUNG_PROBE_SECONDS == 60
    port, pid = st.port, st.pid
    sup = supervisor(core)
    entry = core.catalogue.role(LLM)
    t0 = clock.monotonic()

    async def tick(t: float) -> None:
        """Move the clock to ``t0 + t``: the check loop wakes every 15 s (a quarter)."""
        await until(lambda: clock.waits_until(t0 + t, "sleep"))
        clock.advance(t0 + t - clock.monotonic())

    try:
        # 15 s: a check is sent and answered at once
        await tick(15)
        await until(lambda: not sup.checks_out())
        await until(lambda: clock.waits_until(t0 + 30, "sleep"))
        os.kill(pid, signal.SIGSTOP)  # now it answers nothing, not even /health
        try:
            await tick(30)  # the next check goes out, and no answer comes
            await until(lambda: sup.checks_out() == [port])
            await tick(45)  # 15 s unanswered: "not responding" while it is decided
            await until(lambda: not core.lifecycle.instance(entry).responding)
            assert core.manager.status(port).state is ServerState.READY
            await tick(60)
            await tick(75)  # 45 s unanswered: not yet hung
            assert not _said(core, "treated as hung") and sup.checks_out() == [port]
            await tick(90)  # 60 s unanswered: hung
            await until(lambda: _said(core, "treated as hung"))
            assert _said(core, f"llama-server PID {pid} answered no health check for 60 s")
            assert _said(core, "hung; restarting it in 1 s (attempt 1 of 3)")
            assert core.manager.status(port).pid == pid  # not before the back-off
            # the back-off's sleep, asked once the hung server is stopped (real time)
            await until(lambda: ("sleep", 1.0) in clock.asked, 60)
            clock.advance(1)
            await until(
                lambda: (
                    core.manager.status(port).state is ServerState.READY
                    and core.manager.status(port).pid != pid
                )
            )
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
        await until(lambda: not alive(pid))
        assert [s for k, s in clock.asked if k == "sleep"][:6] == [15.0] * 6
    finally:
        await core.stop()
