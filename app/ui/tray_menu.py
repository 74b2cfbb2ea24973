"""The tray menu, rebuilt from the current state each time it opens. It speaks in models:
a status line, FamilyLog's Vision and LLM with one Load or Unload each, "Other models",
"Unload all"; ports and PIDs are left to the models window.

Every action is an attribute (``act_*``, ``profile_actions[role]``, ``other_actions[key]``)
so tests can ``.trigger()`` it without a real tray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from app.core.app_core import AppCore
from app.core.gpu.snapshot import GpuSnapshot
from app.core.servers.states import ServerState
from app.core.summary import (
    EXTERNAL_WARNING,
    MemoryByPid,
    ModelView,
    model_view,
    other_models,
    status_line,
)
from app.ui.hooks import UiHooks
from app.ui.machines_menu import MachinesMenu


class MemoryReader(Protocol):
    """Each server's memory as its log tells it, by PID (the GPU monitor)."""

    server_memory: MemoryByPid


class RunsSection(Protocol):
    """The FamilyLog runs section of the menu (``RunsUi``)."""

    act_process_now: QAction | None
    act_cancel: QAction | None
    recent_menu: QMenu | None

    def fill_menu(self, menu: QMenu) -> None: ...


class MenuHost(Protocol):
    """What the tray menu needs of the app (``TrayApp``)."""

    core: AppCore
    hooks: UiHooks
    gpu_snapshot: GpuSnapshot | None
    gpu_monitor: MemoryReader
    runs_ui: RunsSection | None  # None without FamilyLog runs

    def load(self, key: str) -> object: ...
    def unload(self, key: str) -> object: ...
    def unload_ports(self, ports: tuple[int, ...]) -> object: ...
    def unload_all(self) -> object: ...
    def cancel(self, key: str) -> object: ...
    def show_models(self) -> None: ...
    def show_get_models(self) -> None: ...
    def show_benchmark(self) -> None: ...
    def show_check(self) -> None: ...
    def show_settings(self) -> None: ...
    def share_gpu(self, on: bool) -> object: ...
    def quit(self) -> None: ...


@dataclass
class ProfileActions:
    """A FamilyLog model in the menu: its state line and its one action (Load or Unload)."""

    header: QAction
    action: QAction
    kind: str  # "load", "unload" or "cancel": what ``action`` does
    settings: QAction | None  # offered when the model cannot be loaded

    @property
    def load(self) -> QAction | None:
        return self.action if self.kind == "load" else None

    @property
    def unload(self) -> QAction | None:
        return self.action if self.kind == "unload" else None


class TrayMenu(QMenu):
    def __init__(self, host: MenuHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.profile_actions: dict[str, ProfileActions] = {}
        self.other_actions: dict[str, ProfileActions] = {}
        self.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        host, core = self.host, self.host.core
        memory = host.gpu_monitor.server_memory
        self.act_status = self._add(status_line(core, host.gpu_snapshot, memory), enabled=False)
        # ports held by programs the app did not start: the details are in the models window
        self.external_actions = []
        if core.external:
            warn = self._add(EXTERNAL_WARNING)
            warn.triggered.connect(host.show_models)
            self.external_actions.append(warn)
        self.addSeparator()
        self.profile_actions = {}
        for name, entry in core.catalogue.roles().items():
            view = model_view(core, entry)
            header = self._add(view.text, enabled=False)
            action = self._model_action(view)
            if view.problem and not view.can_unload:  # nothing to do but set it up
                action.setVisible(False)
            fix = None
            if view.problem:
                fix = self._add(f"Set up {entry.title} in Settings…")
                fix.triggered.connect(host.show_settings)
            self.profile_actions[name] = ProfileActions(header, action, view.action, fix)
        self.addSeparator()
        self.other_menu = self.addMenu("Other models")
        self.other_actions = {}
        for view in other_models(core):
            act = self._model_action(view, self.other_menu, other=True)
            self.other_actions[view.entry.key] = ProfileActions(act, act, view.action, None)
        # processes whose file left the catalogue: still unloadable from here
        self.orphan_actions = []
        for inst in core.lifecycle.snapshot():
            if inst.entry is None and inst.status.state.alive:
                act = self._add(f"Unload {inst.key}", menu=self.other_menu)
                act.setEnabled(not core.manager.is_busy(inst.port))
                act.triggered.connect(lambda _=False, p=inst.port: host.unload_ports((p,)))
                self.orphan_actions.append(act)
        self.other_menu.setEnabled(bool(self.other_actions or self.orphan_actions))
        any_alive = any(st.state.alive for st in core.manager.statuses().values())
        self.act_unload_all = self._add("Unload all", enabled=any_alive)
        self.act_unload_all.triggered.connect(host.unload_all)
        self.addSeparator()
        self.act_models = self._add("Models and memory…")
        self.act_models.triggered.connect(host.show_models)
        self.act_get_models = self._add("Get models…", enabled=core.downloads is not None)
        self.act_get_models.triggered.connect(host.show_get_models)
        self.machines = MachinesMenu(self.addMenu("Machines"), host)
        self.act_benchmark = self._add("Benchmark…")
        self.act_benchmark.triggered.connect(host.show_benchmark)
        self.act_check = self._add("Check models…")
        self.act_check.triggered.connect(host.show_check)
        hooks = host.hooks
        self.act_logs = self._add("Show logs…", enabled=hooks.show_logs is not None)
        if hooks.show_logs is not None:
            self.act_logs.triggered.connect(hooks.show_logs)
        runs_ui = host.runs_ui
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

    def _model_action(self, view: ModelView, menu: QMenu | None = None, other=False) -> QAction:
        """The one action of a model: "Load X" / "Unload X", greyed while it is busy."""
        text = view.action_text
        if other and view.state in (ServerState.READY, ServerState.FAILED):
            text += f" ({view.state_text})"  # "Unload alpha-1b (ready)"
        act = self._add(text, enabled=view.enabled, menu=menu)
        do = {"load": self.host.load, "unload": self.host.unload, "cancel": self.host.cancel}[
            view.action
        ]
        act.triggered.connect(lambda _=False, k=view.entry.key: do(k))
        return act

    def _add(self, text: str, *, enabled: bool = True, menu: QMenu | None = None) -> QAction:
        act = (menu or self).addAction(text)
        act.setEnabled(enabled)
        return act
