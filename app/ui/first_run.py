"""The first-run set-up dialog: pick llama-server and the vision and LLM models, write settings.

Shown by the launcher when ``app.core.settings.first_run.first_run_reasons(settings, paths)`` gives reasons:

    saved = await run_first_run(settings, paths)   # on the qasync loop
    if saved: settings = load_settings(paths)

Everything it finds comes from ``app.core.discovery`` (Qt-free), the same scan and server
search the app uses at start; this module only shows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings
from app.core.bootstrap import setup_downloads
from app.core.discovery.familylog_env import EnvImportError, read_familylog_env
from app.core.discovery.folders import ModelFolder, default_folders, user_folder
from app.core.discovery.scan import FoundModel, ModelScanner
from app.core.discovery.server import ServerCandidate, find_servers, resolve_server_path
from app.core.downloads.jobs import COMPLETED, DownloadJob
from app.core.downloads.service import Downloads
from app.core.settings.first_run import FirstRunChoice, first_run_reasons, write_first_run_settings
from app.paths import AppPaths
from app.ui.first_run_offer import StarterPanel
from app.ui.first_run_table import COLUMNS, ModelTable  # noqa: F401  (COLUMNS re-exported)

log = logging.getLogger(__name__)


class FirstRunDialog(QDialog):
    settings_written = Signal(str)  # the settings file path

    def __init__(
        self,
        settings: Settings,
        paths: AppPaths,
        *,
        folders: list[ModelFolder] | None = None,
        parent: QWidget | None = None,
        downloads: Downloads | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up FamilyLog Tray")
        self.resize(980, 600)
        self.paths = paths
        self.folders = list(folders if folders is not None else default_folders())
        self.scanner = ModelScanner()  # keeps the headers it read for the next scan
        self.models: list[FoundModel] = []
        self.servers: list[ServerCandidate] = []
        self.choice = FirstRunChoice()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Models from the hub when none are found (the seed's pair); the set-up window's
        # own service unless one is given, paused when it closes (the core resumes it).
        self.owns_downloads = downloads is None
        self.downloads = downloads or setup_downloads(settings, paths)
        self.starter: StarterPanel | None = None
        self._prefill(settings)
        # File pickers, replaceable in tests.
        self.ask_folder: Callable[[], str] = lambda: QFileDialog.getExistingDirectory(
            self, "Add a folder with GGUF models"
        )
        self.ask_env: Callable[[], str] = lambda: QFileDialog.getOpenFileName(
            self, "FamilyLog's .env", str(Path.home()), "dotenv (.env *.env);;All files (*)"
        )[0]
        self.ask_server: Callable[[], str] = lambda: QFileDialog.getOpenFileName(
            self, "The llama-server binary"
        )[0]
        self._build(first_run_reasons(settings, paths))

    # ── Layout ────────────────────────────────────────────────────────────────
    def _build(self, reasons: list[str]) -> None:
        root = QVBoxLayout(self)
        intro = "Choose the llama-server binary and the models FamilyLog uses."
        self.intro_label = QLabel("\n".join([*reasons, intro]))
        self.intro_label.setWordWrap(True)
        root.addWidget(self.intro_label)

        server_box = QGroupBox("llama-server")
        sl = QVBoxLayout(server_box)
        row = QHBoxLayout()
        self.server_combo = QComboBox()
        self.server_combo.currentIndexChanged.connect(self._server_changed)
        self.browse_server_button = QPushButton("Browse…")
        self.browse_server_button.clicked.connect(self._browse_server)
        row.addWidget(self.server_combo, 1)
        row.addWidget(self.browse_server_button)
        sl.addLayout(row)
        self.server_status = QLabel("Looking for llama-server…")
        self.server_status.setWordWrap(True)
        sl.addWidget(self.server_status)
        root.addWidget(server_box)

        models_box = QGroupBox("Models found")
        ml = QVBoxLayout(models_box)
        self.table = ModelTable()
        self.table.itemSelectionChanged.connect(self._update_buttons)
        ml.addWidget(self.table)
        self.scan_label = QLabel("Looking for models…")
        self.scan_label.setWordWrap(True)
        ml.addWidget(self.scan_label)
        buttons = QHBoxLayout()
        self.vision_button = QPushButton("Use as vision model")
        self.vision_button.clicked.connect(self.use_selected_for_vision)
        self.llm_button = QPushButton("Use as LLM")
        self.llm_button.clicked.connect(self.use_selected_for_llm)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self._ask_and_add_folder)
        self.import_button = QPushButton("Import FamilyLog .env…")
        self.import_button.clicked.connect(self._ask_and_import_env)
        for b in (self.vision_button, self.llm_button, self.add_folder_button, self.import_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        ml.addLayout(buttons)
        root.addWidget(models_box, 1)
        self.starter_slot = QVBoxLayout()
        root.addLayout(self.starter_slot)

        self.vision_label = QLabel()
        self.llm_label = QLabel()
        self.message_label = QLabel()
        for label in (self.vision_label, self.llm_label, self.message_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            root.addWidget(label)

        self.button_box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.button_box.button(QDialogButtonBox.StandardButton.Save)
        self.button_box.accepted.connect(self.save)
        self.button_box.rejected.connect(self.reject)
        root.addWidget(self.button_box)
        self._update_buttons()

    # ── Discovery ─────────────────────────────────────────────────────────────
    def _prefill(self, settings: Settings) -> None:
        def existing(p: str) -> str:
            return p if p and Path(p).expanduser().is_file() else ""

        c = self.choice
        c.server_path = existing(resolve_server_path(settings))
        c.vision_model = existing(settings.VISION_MODEL_GGUF)
        c.vision_mmproj = existing(settings.VISION_MMPROJ) if c.vision_model else ""
        c.llm_model = existing(settings.LLM_MODEL_GGUF)
        c.familylog_dir = settings.FAMILYLOG_DIR

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine on the (qasync) loop; keep it until done; show its failure."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("First-run set-up step failed", exc_info=t.exception())
                self.message_label.setText(f"Something went wrong: {t.exception()}")

        task.add_done_callback(done)
        return task

    async def wait_idle(self) -> None:
        """Until every step started by a button has finished (for callers and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def scan(self) -> None:
        """Find llama-server binaries and models, then fill the dialog."""
        self.scan_label.setText("Looking for models…")
        servers, result = await asyncio.gather(
            find_servers(self.choice.server_path or None),
            asyncio.to_thread(self.scanner.scan, list(self.folders)),
        )
        self.servers = servers
        self.models = result.models
        self._fill_servers()
        self.table.fill(self.models)
        where = ", ".join(str(f.path) for f in result.folders) or "none of the usual folders exist"
        lines = [f"{len(self.models)} model(s) in: {where}."]
        lines += result.problems[:5]  # "Skipped <file>: <why>."
        if len(result.problems) > 5:
            lines.append(f"…and {len(result.problems) - 5} more unreadable files.")
        self.scan_label.setText("\n".join(lines))
        self.choice.default_picks(self.models)
        self._show_picks()
        if not self.models and self.starter is None:
            self.offer_starter()

    # ── No models: the seed's pair from the hub ───────────────────────────────
    def offer_starter(self) -> StarterPanel:
        """Show the pair to get (its sizes and fit are looked up on the hub)."""
        self.starter = StarterPanel(self.downloads, self._downloads_moved)
        self.starter_slot.addWidget(self.starter)
        self.spawn(self.starter.load())
        self._downloads_moved(self.starter.jobs)
        return self.starter

    def _downloads_moved(self, jobs: list[DownloadJob]) -> None:
        """A model of the pair is queued, moves, or has arrived: Save is allowed while
        they download, and an arrived one becomes the pick."""
        c = self.choice
        c.downloading = sorted({j.role for j in jobs if j.role and j.active})
        for job in jobs:
            if job.state != COMPLETED:
                continue
            if job.role == "vision" and not c.vision_model:
                c.vision_model = str(job.model_path)
                c.vision_mmproj = str(job.mmproj_path or "")
            elif job.role == "llm" and not c.llm_model:
                c.llm_model = str(job.model_path)
        self._show_picks()

    def _fill_servers(self) -> None:
        self.server_combo.blockSignals(True)
        self.server_combo.clear()
        for c in self.servers:
            self.server_combo.addItem(c.describe(), str(c.path))
        chosen = self.choice.server_path
        index = next((i for i, c in enumerate(self.servers) if str(c.path) == chosen), -1)
        if index < 0:
            index = next((i for i, c in enumerate(self.servers) if c.usable), -1)
        self.server_combo.setCurrentIndex(index)
        self.server_combo.blockSignals(False)
        self._server_changed(index)

    def _server_changed(self, index: int) -> None:
        if 0 <= index < len(self.servers):
            c = self.servers[index]
            self.choice.server_path = str(c.path) if c.usable else ""
            self.server_status.setText(
                f"Found llama-server version {c.version} at {c.path}."
                if c.usable
                else f"{c.path} cannot be used: {c.error}"
            )
        elif not self.servers:
            self.choice.server_path = ""
            self.server_status.setText(
                "No llama-server found on PATH, in /opt/homebrew/bin, /usr/local/bin or "
                "~/llama.cpp/build/bin. Install llama.cpp (e.g. `brew install llama.cpp`) "
                "or press Browse… to pick the binary."
            )
        self._update_buttons()

    # ── Picking ───────────────────────────────────────────────────────────────
    def selected_model(self) -> FoundModel | None:
        return self.table.selected_model()

    def select_model(self, path: Path) -> None:
        self.table.select_path(path)

    def use_selected_for_vision(self) -> None:
        model = self.selected_model()
        if model is not None:
            self.choice.set_vision(model)
            self._show_picks()

    def use_selected_for_llm(self) -> None:
        model = self.selected_model()
        if model is not None:
            self.choice.llm_model = str(model.path)
            self._show_picks()

    def _show_picks(self) -> None:
        c = self.choice
        vision = c.vision_model or ("downloading" if "vision" in c.downloading else "none")
        if c.vision_model:
            vision += (
                f"\n    + {c.vision_mmproj}"
                if c.vision_mmproj
                else " (no mmproj found: images will fail)"
            )
        self.vision_label.setText(f"Vision model: {vision}")
        llm = c.llm_model or ("downloading" if "llm" in c.downloading else "none")
        self.llm_label.setText(f"LLM model: {llm}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_row = self.table.selected_model() is not None
        self.vision_button.setEnabled(has_row)
        self.llm_button.setEnabled(has_row)
        self.save_button.setEnabled(not self.choice.problems())

    # ── Folders, .env, browsing ───────────────────────────────────────────────
    def _ask_and_add_folder(self) -> None:
        path = self.ask_folder()
        if path:
            self.add_folder(path)

    def add_folder(self, path: str | Path) -> asyncio.Task[Any] | None:
        folder = user_folder(path)
        if not folder.path.is_dir():
            self.message_label.setText(f"{folder.path} is not a folder.")
            return None
        if folder.path not in {f.path for f in self.folders}:
            self.folders.append(folder)
        return self.spawn(self.scan())

    def _ask_and_import_env(self) -> None:
        path = self.ask_env()
        if path:
            self.import_env(path)

    def import_env(self, path: str | Path) -> None:
        try:
            env = read_familylog_env(path)
        except EnvImportError as e:
            self.message_label.setText(str(e))
            return
        text, folders = self.choice.take_env(env)
        self.message_label.setText(text)
        for parent in folders:
            if parent not in {f.path for f in self.folders}:
                self.folders.append(user_folder(parent))
        self._show_picks()
        self.spawn(self.scan())

    def _browse_server(self) -> None:
        path = self.ask_server()
        if path:
            self.choice.server_path = path
            self.spawn(self.scan())

    async def close_downloads(self) -> None:
        """The window is closing: its downloads pause (the core resumes them)."""
        if self.starter is not None:
            self.starter.close_panel()
        if self.owns_downloads:
            await self.downloads.stop()

    # ── Saving ────────────────────────────────────────────────────────────────
    def save(self) -> bool:
        problems = self.choice.problems()
        if problems:
            self.message_label.setText(" ".join(problems))
            return False
        try:
            written = write_first_run_settings(self.paths, self.choice)
        except (OSError, ValueError) as e:
            self.message_label.setText(f"Could not write {self.paths.settings_file}: {e}")
            return False
        self.settings_written.emit(str(written))
        self.accept()
        return True


async def run_first_run(
    settings: Settings,
    paths: AppPaths,
    parent: QWidget | None = None,
    *,
    on_open: Callable[[FirstRunDialog | None], None] | None = None,
) -> bool:
    """Show the set-up dialog, scan, and wait until it closes; True if settings were saved.

    ``on_open(dialog)`` once it is shown, ``on_open(None)`` once it is closed (the launcher
    brings it to the front when the app is launched again meanwhile)."""
    dialog = FirstRunDialog(settings, paths, parent=parent)
    await dialog.downloads.start()  # resumes the pair if an earlier set-up began it
    closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda code: closed.done() or closed.set_result(code))
    dialog.show()
    if on_open is not None:
        on_open(dialog)
        dialog.finished.connect(lambda _code: on_open(None))
    dialog.spawn(dialog.scan())
    code = await closed
    await dialog.wait_idle()
    await dialog.close_downloads()
    dialog.deleteLater()
    return code == QDialog.DialogCode.Accepted
