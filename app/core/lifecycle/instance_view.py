"""What a model process looks like to the rest of the app: the ``Instance`` built from its
server's status and its model's record (its catalogue entry, TTL, requests, whether it
runs with old settings)."""

from __future__ import annotations

from collections.abc import Callable

from app.config import SettingsSource
from app.core.lifecycle.instance import Instance
from app.core.lifecycle.model_state import ModelRecord, ModelRecords, ModelState
from app.core.models.catalogue import Catalogue
from app.core.models.entry import ModelEntry
from app.core.models.launch_args import launch_key, launch_kwargs, rpc_of
from app.core.presets.service import Presets
from app.core.presets.store import PresetError
from app.core.servers.states import ServerStatus, file_note


class InstanceViews:
    """Builds the ``Instance`` of a server's status for ``ModelLifecycle``."""

    def __init__(
        self,
        catalogue: Catalogue,
        records: ModelRecords,
        settings: SettingsSource,
        presets: Presets | None,
        known: Callable[[], frozenset[str] | None],
    ) -> None:
        """``known()``: the options the llama-server binary takes (None: not known yet)."""
        self.catalogue = catalogue
        self._records = records
        self._settings = settings
        self.presets = presets
        self._known = known

    def key_for(self, st: ServerStatus) -> tuple[str, ModelEntry | None]:
        spec = st.spec
        assert spec is not None
        entry = self.catalogue.by_file(spec.model_path, spec.mmproj)
        return (entry.key if entry else st.model_name), entry

    def of(self, st: ServerStatus) -> Instance:
        key, entry = self.key_for(st)
        return self.view(st, key, entry, self._records.of_status(st))

    def view(
        self, st: ServerStatus, key: str, entry: ModelEntry | None, rec: ModelRecord | None
    ) -> Instance:
        ttl = rec.ttl if rec else None  # a client's
        if ttl is None and entry is not None and self.presets is not None:
            ttl = self.presets.ttl(entry)
        return Instance(
            key=key,
            entry=entry,
            status=st,
            in_flight=rec.in_flight if rec else 0,
            held_by=tuple(sorted(rec.holders)) if rec else (),
            last_used=max(rec.last_used if rec else 0.0, st.ready_at or 0.0),
            stale=self._stale(st, entry, rec),
            file_note=file_note(st),
            ttl=ttl,
            requests=rec.served if rec else 0,
            pinned=bool(entry and self.presets and self.presets.pinned(entry)),
            responding=not (rec is not None and rec.state is ModelState.NOT_RESPONDING),
        )

    def _stale(
        self, st: ServerStatus, entry: ModelEntry | None, rec: ModelRecord | None
    ) -> str | None:
        if entry is None:
            return "its file is no longer in the catalogue; unload it when you no longer need it"
        spec = st.spec
        assert spec is not None
        preset = None
        if self.presets is not None:
            try:
                preset = self.presets.for_load(entry, check_draft=False)
            except PresetError as e:
                return f"its settings in models.ini cannot be used now ({e}); it runs as started"
        wanted = launch_kwargs(
            entry,
            self._settings(),
            rec.config if rec else None,
            preset=preset,
            known=self._known(),
        )
        have = {
            "n_gpu_layers": spec.n_gpu_layers,
            "ctx_size": spec.ctx_size,
            "mmproj": spec.mmproj,
            "extra_args": spec.extra_args,
        }
        if launch_key(have) != launch_key(wanted):
            return "runs with the old settings: restart to apply"
        # The RPC workers are placement's choice (of those its settings name, or in auto of
        # RPC_WORKERS): old only when it runs on a worker its settings no longer name.
        named, running = rpc_of(wanted["extra_args"]), rpc_of(spec.extra_args)
        if named is not None and not set(running or ()) <= set(named):
            return "runs across other RPC workers than its settings name: restart to apply"
        return None

    def describe(self, st: ServerStatus) -> str:
        """``"<model> on port N"`` for a notice."""
        name = st.model_name or "llama-server"
        if st.spec is not None:
            key, entry = self.key_for(st)
            name = entry.title if entry else key
        return f"{name} on port {st.port}"
