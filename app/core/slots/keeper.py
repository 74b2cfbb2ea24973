"""``SlotKeeper``: the manager's hooks that keep a model's context across a switch.

Every server it may keep starts with ``--slot-save-path`` (the store's folder) and its
fingerprint is noted. Before such a server is stopped on purpose, each slot holding at least
``MIN_TOKENS`` tokens from a task since the start is saved to a file
(``POST /slots/{id}?action=save``); when a server with the same fingerprint is ready again,
the newest saved slots are restored into its slots before it is marked ready, so the next
request with the same prefix evaluates only what is new. A save or a restore that fails,
or takes longer than evaluating its tokens would (the model's measured prompt speed), is
skipped and logged: never an error of a request, a load or an unload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.config import SettingsSource
from app.core.servers.states import LaunchSpec, ServerState, ServerStatus
from app.core.slots import client
from app.core.slots.fingerprint import describe, fingerprint
from app.core.slots.store import SavedSlot, SlotStore

log = logging.getLogger(__name__)

MIN_TOKENS = 256  # shorter contexts are evaluated again faster than a file is written and read
LIST_TIMEOUT = 2.0  # GET /slots (a server that does not answer is stopped without a save)
FALLBACK_TOKENS_PER_SECOND = 200.0  # a model not measured yet: a slow CPU's prompt speed
MIN_SECONDS = 0.25
MAX_SECONDS = 10.0

PromptSpeed = Callable[[ServerStatus], float | None]
Evaluated = Callable[[ServerStatus], int | None]
MIB = 1024 * 1024
DEFAULT_BUDGET = 2048 * MIB  # no model known to size it by
SLOTS_IN_BUDGET = 4


def default_budget(full_slot_bytes: list[int]) -> int:
    """``SLOT_CACHE_MB=0``: room for four full-context slots of the largest model given
    (its KV cache at its context size), between 256 MiB and 16 GiB."""
    known = [b for b in full_slot_bytes if b > 0]
    if not known:
        return DEFAULT_BUDGET
    return min(16 * 1024 * MIB, max(256 * MIB, SLOTS_IN_BUDGET * max(known)))


@dataclass(frozen=True)
class SlotEvent:
    """One save or restore, done or skipped (the log says the same in words)."""

    action: str  # "save" or "restore"
    port: int
    slot: int
    tokens: int
    ms: float
    ok: bool
    why: str = ""


class SlotKeeper:
    """``settings``: ``SLOT_CACHE`` (asked at each use); ``prompt_speed(status)``: the prompt
    tokens per second measured for the model behind ``status`` (None: not yet);
    ``binary()``: the llama-server the manager starts (part of the fingerprint);
    ``evaluated(status)``: the tokens the model has evaluated through the app so far (None
    when requests may reach the server some other way): a server that evaluated fewer than
    ``MIN_TOKENS`` since it was ready holds nothing worth a file, and is not even asked
    (``GET /slots`` cost a switch 3-14 ms)."""

    def __init__(
        self,
        store: SlotStore,
        settings: SettingsSource,
        binary: Callable[[], str],
        prompt_speed: PromptSpeed | None = None,
        evaluated: Evaluated | None = None,
        *,
        min_seconds: float = MIN_SECONDS,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        self.store = store
        self._settings = settings
        self._binary = binary
        self._prompt_speed = prompt_speed or (lambda _st: None)
        self._evaluated = evaluated or (lambda _st: None)
        self._evaluated_at_ready: dict[int, int | None] = {}
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        self._launched: dict[int, tuple[str, str]] = {}  # port -> (fingerprint, model path)
        self.events: deque[SlotEvent] = deque(maxlen=100)

    def on(self) -> bool:
        return bool(self._settings().SLOT_CACHE)

    # ── ServerHooks ────────────────────────────────────────────────────────────
    def launch_args(self, spec: LaunchSpec) -> list[str]:
        self._launched.pop(spec.port, None)
        if not self.on() or spec.mmproj:
            return []  # llama-server keeps no slot files for a model with a projector
        if any(a.split("=")[0] == "--slot-save-path" for a in spec.extra_args):
            return []  # the user's own: theirs to manage
        try:
            fp = fingerprint(describe(spec, self._binary()))
            folder = self.store.ensure_folder()
        except OSError as e:
            log.warning("Slot cache off for %s: %s", Path(spec.model_path).name, e)
            return []
        self._launched[spec.port] = (fp, spec.model_path)
        return ["--slot-save-path", str(folder)]

    async def after_ready(self, status: ServerStatus) -> None:
        launched = self._launched.get(status.port)
        if launched is None or not self.on():
            return
        self._evaluated_at_ready[status.port] = self._evaluated(status)
        fp = launched[0]
        if self.store.loaded:  # in memory: no trip to a worker thread for every load
            saved = self.store.matching(fp)
        else:
            saved = await asyncio.to_thread(self.store.matching, fp)
        if not saved:
            return
        slots = await client.list_slots(status, LIST_TIMEOUT)
        for slot_id, entry in zip(range(len(slots)), saved, strict=False):
            if not await self._restore(status, slot_id, entry):
                break

    async def before_stop(self, status: ServerStatus) -> None:
        launched = self._launched.pop(status.port, None)
        if launched is None or status.state is not ServerState.READY or not self.on():
            return
        fp, model = launched
        if not self._may_hold_enough(status):
            return
        slots = await client.list_slots(status, LIST_TIMEOUT)
        for slot in slots:
            tokens = client.slot_tokens(slot)
            if tokens >= MIN_TOKENS and isinstance(slot.get("id"), int):
                await self._save(status, slot["id"], tokens, fp, model, len(slots))

    def _may_hold_enough(self, status: ServerStatus) -> bool:
        before = self._evaluated_at_ready.pop(status.port, None)
        now = self._evaluated(status)
        if before is None or now is None or now < before:  # unknown, or the figures reset
            return True
        return now - before >= MIN_TOKENS

    # ── Save and restore ───────────────────────────────────────────────────────
    def time_limit(self, status: ServerStatus, tokens: int) -> float:
        """How long evaluating ``tokens`` would take this model (bounded): a save or restore
        that takes longer is not worth it."""
        speed = self._prompt_speed(status) or FALLBACK_TOKENS_PER_SECOND
        return min(self.max_seconds, max(self.min_seconds, tokens / speed))

    async def _save(
        self, status: ServerStatus, slot_id: int, tokens: int, fp: str, model: str, n_slots: int
    ) -> None:
        name = self.store.new_name(fp, slot_id)
        limit = self.time_limit(status, tokens)
        started = time.perf_counter()
        try:
            r = await asyncio.wait_for(client.save(status, slot_id, name, limit), limit)
        except (TimeoutError, client.SlotError) as e:
            why = (
                f"took longer than evaluating it would ({limit:.2f} s)"
                if isinstance(e, TimeoutError)
                else str(e)
            )
            self._skipped("save", status, slot_id, tokens, started, why)
            return  # a file cut short is deleted with the strays
        ms = (time.perf_counter() - started) * 1000
        saved, size = int(r.get("n_saved") or 0), int(r.get("n_written") or 0)
        if size <= 0 or not await asyncio.to_thread(self._has_file, name, size):
            # llama-server answers 200 with nothing written when it cannot write the file
            await asyncio.to_thread(self.store.discard_file, name)
            why = f"llama-server could not write it to {self.store.folder}"
            self._skipped("save", status, slot_id, saved, started, why)
            return
        if saved < MIN_TOKENS:
            await asyncio.to_thread(self.store.discard_file, name)
            self._skipped("save", status, slot_id, saved, started, "it holds too little")
            return
        entry = SavedSlot(name, fp, model, saved, size, time.time(), time.time(), round(ms, 1))
        removed = await asyncio.to_thread(self.store.add, entry, n_slots)
        self.events.append(SlotEvent("save", status.port, slot_id, saved, ms, True))
        log.info(
            "Kept the context of %s (slot %d, %d tokens, %.1f MB) in %.0f ms%s",
            status.model_name,
            slot_id,
            saved,
            size / 1e6,
            ms,
            f"; deleted {len(removed)} older" if removed else "",
        )

    def _has_file(self, name: str, size: int) -> bool:
        try:
            return (self.store.folder / name).stat().st_size == size
        except OSError:
            return False

    async def _restore(self, status: ServerStatus, slot_id: int, entry: SavedSlot) -> bool:
        """True when restored (or skipped for this file alone); False: stop restoring."""
        limit = self.time_limit(status, entry.tokens)
        started = time.perf_counter()
        try:
            r = await asyncio.wait_for(client.restore(status, slot_id, entry.name, limit), limit)
        except TimeoutError:
            why = f"took longer than evaluating it would ({limit:.2f} s)"
            self._skipped("restore", status, slot_id, entry.tokens, started, why)
            return False
        except client.SlotError as e:
            # llama-server refused the file (damaged, or not from this model after all)
            await asyncio.to_thread(self.store.remove, entry.name)
            self._skipped("restore", status, slot_id, entry.tokens, started, f"{e}; deleted")
            return True
        ms = (time.perf_counter() - started) * 1000
        await asyncio.to_thread(self.store.touch, entry.name)
        tokens = int(r.get("n_restored") or 0)
        self.events.append(SlotEvent("restore", status.port, slot_id, tokens, ms, True))
        log.info(
            "Restored the context of %s (slot %d, %d tokens) in %.0f ms",
            status.model_name,
            slot_id,
            tokens,
            ms,
        )
        return True

    def _skipped(
        self, action: str, status: ServerStatus, slot_id: int, tokens: int, started: float, why: str
    ) -> None:
        ms = (time.perf_counter() - started) * 1000
        self.events.append(SlotEvent(action, status.port, slot_id, tokens, ms, False, why))
        log.warning(
            "Did not %s the context of %s (slot %d, %d tokens): %s",
            action,
            status.model_name,
            slot_id,
            tokens,
            why,
        )
