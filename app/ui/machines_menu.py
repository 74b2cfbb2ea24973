"""The tray's "Machines" submenu: "Share this GPU with other machines" (a switch, with the
RPC protocol's missing authentication said in its tooltip and in the line below it), the
RPC workers the app uses and the peers, each with its state and the reason. The lines come
from ``app.core.machine_rows``."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from app.core.app_core import AppCore
from app.core.machine_rows import peer_lines, share_line, worker_lines
from app.settings_machines import NO_AUTH


class MachinesHost(Protocol):
    core: AppCore

    def share_gpu(self, on: bool) -> object: ...
    def show_settings(self) -> None: ...


class MachinesMenu:
    """Fills the submenu; its actions are attributes, so tests can trigger them."""

    def __init__(self, menu: QMenu, host: MachinesHost) -> None:
        self.menu = menu
        core = host.core
        menu.setToolTipsVisible(True)
        self.act_share = menu.addAction("Share this GPU with other machines")
        self.act_share.setCheckable(True)
        self.act_share.setChecked(core.settings.RPC_WORKER_ENABLED)
        self.act_share.setEnabled(core.shared_worker is not None)
        self.act_share.setToolTip(f"{NO_AUTH}.")
        self.act_share.toggled.connect(host.share_gpu)
        share = share_line(core)
        self.share_status = self._line(share.text, share.tip)
        menu.addSeparator()
        self.worker_actions: list[QAction] = []
        workers = worker_lines(core)
        self._line("RPC workers" if workers else "No RPC workers set (RPC_WORKERS)")
        for w in workers:
            self.worker_actions.append(self._line(("" if w.ok else "⚠ ") + w.text, w.tip))
        menu.addSeparator()
        self.peer_actions: list[QAction] = []
        peers = peer_lines(core)
        self._line("Peers" if peers else "No peers set (PEERS)")
        for peer, models in peers:
            act = self._line(("" if peer.ok else "⚠ ") + peer.text, peer.tip)
            self.peer_actions.append(act)
            for m in models:
                self.peer_actions.append(self._line(f"    {m.key} ({m.type}, {m.state})"))
        menu.addSeparator()
        self.act_settings = menu.addAction("Settings for other machines…")
        self.act_settings.triggered.connect(host.show_settings)

    def _line(self, text: str, tip: str = "") -> QAction:
        act = self.menu.addAction(text)
        act.setEnabled(False)
        if tip:
            act.setToolTip(tip)
        return act
