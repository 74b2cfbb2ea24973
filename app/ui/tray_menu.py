"""The tray menu, rebuilt from the current state each time it opens.

Every action is an attribute (``act_*``, ``profile_actions[name]``) so tests can
``.trigger()`` it without a real tray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from app.core.app_core import AppCore
from app.core.servers.external import ExternalServer
from app.core.summary import model_view, tooltip
from app.ui.hooks import UiHooks


class MenuHost(Protocol):
    core: AppCore
    hooks: UiHooks
    run_in_progress: bool

    def load(self, key: str) -> None: ...
    def unload(self, key: str) -> None: ...
    def unload_ports(self, ports: tuple[int, ...]) -> None: ...
    def unload_all(self) -> None: ...
    def show_models(self) -> None: ...
    def show_settings(self) -> None: ...
    def quit(self) -> None: ...


@dataclass
class ProfileActions:
    header: QAction
    load: QAction
    unload: QAction
    settings: QAction | None  # offered when the profile cannot be loaded


def external_text(ext: ExternalServer) -> str:
    """``llama-server on :8080: external (PID 123)``: a port held by a program the app
    did not start (never stopped by the app)."""
    what = "llama-server" if ext.is_llama_server else (ext.name or "another program")
    pid = f"PID {ext.pid}" if ext.pid else "PID unknown"
    return f"{what} on :{ext.port}: external ({pid})"


class TrayMenu(QMenu):
    def __init__(self, host: MenuHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.profile_actions: dict[str, ProfileActions] = {}
        self.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        host, core = self.host, self.host.core
        snapshot = getattr(host, "gpu_snapshot", None)
        self.act_status = self._add(tooltip(core, snapshot, host.run_in_progress), enabled=False)
        self.addSeparator()
        self.profile_actions = {}
        roles = core.catalogue.roles()
        for name, entry in roles.items():
            view = model_view(core, entry)
            header = self._add(view.text, enabled=False)
            load = self._add(f"Load {entry.title}", enabled=view.can_load)
            load.triggered.connect(lambda _=False, k=entry.key: host.load(k))
            unload = self._add(f"Unload {entry.title}", enabled=view.can_unload)
            unload.triggered.connect(lambda _=False, k=entry.key: host.unload(k))
            if view.problem and not view.can_unload:  # nothing to do but set it up
                for act in (load, unload):
                    act.setVisible(False)
            fix = None
            if view.problem:
                fix = self._add(f"Set up {entry.title} in Settings…")
                fix.triggered.connect(host.show_settings)
            self.profile_actions[name] = ProfileActions(header, load, unload, fix)
            self.addSeparator()
        role_files = {e.file for e in roles.values() if e.configured}
        for inst in core.lifecycle.snapshot():
            if not inst.status.state.alive or (inst.entry and inst.entry.file in role_files):
                continue
            act = self._add(f"Unload {inst.key}", enabled=not core.manager.is_busy(inst.port))
            act.triggered.connect(lambda _=False, p=inst.port: host.unload_ports((p,)))
        # ports held by programs the app did not start: shown, never stopped from here
        self.external_actions = [
            self._add(external_text(ext), enabled=False) for _, ext in sorted(core.external.items())
        ]
        any_alive = any(st.state.alive for st in core.manager.statuses().values())
        self.act_unload_all = self._add("Unload all", enabled=any_alive)
        self.act_unload_all.triggered.connect(host.unload_all)
        self.addSeparator()
        self.act_models = self._add("Show models and VRAM…")
        self.act_models.triggered.connect(host.show_models)
        hooks = host.hooks
        self.act_logs = self._add("Show logs…", enabled=hooks.show_logs is not None)
        if hooks.show_logs is not None:
            self.act_logs.triggered.connect(hooks.show_logs)
        runs_ui = getattr(host, "runs_ui", None)
        self.act_cancel_run = None
        self.recent_runs_menu = None
        if runs_ui is not None:
            runs_ui.fill_menu(self)
            self.act_process_now = runs_ui.act_process_now
            self.act_cancel_run = runs_ui.act_cancel
            self.recent_runs_menu = runs_ui.recent_menu
        else:
            self.act_process_now = self._add("Process now", enabled=False)
        self.addSeparator()
        self.act_settings = self._add("Settings…")
        self.act_settings.triggered.connect(host.show_settings)
        self.act_start_at_login = self._add(
            "Start at login", enabled=hooks.set_autostart is not None
        )
        self.act_start_at_login.setCheckable(True)
        if hooks.autostart_enabled is not None:
            try:
                self.act_start_at_login.setChecked(bool(hooks.autostart_enabled()))
            except Exception:
                self.act_start_at_login.setEnabled(False)
        if hooks.set_autostart is not None:
            self.act_start_at_login.toggled.connect(hooks.set_autostart)
        self.addSeparator()
        self.act_quit = self._add("Quit")
        self.act_quit.triggered.connect(host.quit)

    def _add(self, text: str, *, enabled: bool = True) -> QAction:
        act = self.addAction(text)
        act.setEnabled(enabled)
        return act
