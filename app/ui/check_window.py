"""The "Check models" window: pick FamilyLog's models, all, or one; Start, watch what runs,
Cancel; then the table of checks, each pass/fail with its figures or reason. The work is
``app.core.check``'s, through the app's own API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings
from app.core.api.client import ApiAnswerError, AppApi, AppNotRunningError
from app.core.app_core import AppCore
from app.core.bench.prompts import sample_image
from app.core.check.plan import choose, familylog_roles
from app.core.check.report import FAIL, HEADS, PASS, Report, table_text
from app.core.check.runner import ModelCheck
from app.paths import AppPaths
from app.ui.tasks import spawn

log = logging.getLogger(__name__)

COLORS = {PASS: "#1b7f2a", FAIL: "#b3261e"}  # skip: the default colour
FAMILYLOG, ALL = "familylog", "all"


class CheckWindow(QWidget):
    """``api_url``: the app's API address now (None while it is off); ``models``: the keys
    to offer; ``image``: the picture sent to vision models; ``server_log``: a port's log."""

    def __init__(
        self,
        *,
        api_url: Callable[[], str | None],
        settings: Callable[[], Settings],
        models: Callable[[], list[str]],
        image: Callable[[], bytes],
        server_log: Callable[[int], Path],
    ) -> None:
        super().__init__()
        self._api_url, self._settings, self._models = api_url, settings, models
        self._image, self._server_log = image, server_log
        self.setWindowTitle("FamilyLog Tray: check models")
        self.task: asyncio.Task | None = None
        self.report: Report | None = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Check"))
        self.which_box = QComboBox()
        row.addWidget(self.which_box, 1)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.status = QLabel(
            "Loads each model, asks it (a chat, an image, an embedding) and unloads it, then "
            "runs FamilyLog's vision → LLM switch. Models loaded now stay loaded."
        )
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.table = QTableWidget(0, len(HEADS))
        self.table.setHorizontalHeaderLabels([h.capitalize() for h in HEADS])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        self.resize(980, 560)
        self.fill_models()

    @classmethod
    def of(cls, core: AppCore, paths: AppPaths) -> CheckWindow:
        """The window for the running app: its API, settings, catalogue and server logs."""
        return cls(
            api_url=lambda: core.api.url if core.api is not None else None,
            settings=lambda: core.settings,
            models=lambda: [e.key for e in core.catalogue.entries() if e.configured],
            image=lambda: sample_image().read_bytes(),
            server_log=paths.server_log,
        )

    def fill_models(self) -> None:
        current = self.which_box.currentData()
        self.which_box.clear()
        self.which_box.addItem("FamilyLog's models and their switch (after a migration)", FAMILYLOG)
        self.which_box.addItem("All models", ALL)
        for key in self._models():
            self.which_box.addItem(key, key)
        if current is not None and (i := self.which_box.findData(current)) >= 0:
            self.which_box.setCurrentIndex(i)

    def start(self) -> asyncio.Task | None:
        url = self._api_url()
        if not url:
            self.status.setText("The app's API is off (see Settings → API): the check uses it.")
            return None
        which = self.which_box.currentData()
        self.table.setRowCount(0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting…")
        self.task = spawn(self._run(url, None if which == FAMILYLOG else which), "Check models")
        return self.task

    async def _run(self, url: str, which: str | None) -> None:
        settings = self._settings()
        try:
            async with AppApi(url, settings.API_KEY.get_secret_value()) as api:
                keys, pair = choose(await api.models(), which, familylog_roles(settings))
                check = ModelCheck(
                    api,
                    image=self._image(),
                    server_log=self._server_log,
                    progress=self.status.setText,
                )
                self.report = await check.run(keys, pair)
        except asyncio.CancelledError:
            self.status.setText("Cancelled; the models it had loaded were unloaded.")
            raise
        except (AppNotRunningError, ApiAnswerError, OSError) as e:
            self.status.setText(f"The check could not run: {e}")
            return
        finally:
            self.start_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
        self.show_report(self.report)
        log.info("Check models:\n%s", table_text(self.report))

    def show_report(self, report: Report) -> None:
        if report.refused:
            self.status.setText(f"Not checked: {report.refused}")
            return
        self.table.setRowCount(len(report.rows))
        last = None
        for r, row in enumerate(report.rows):
            cells = [row.subject if row.subject != last else "", row.check, row.result, row.detail]
            last = row.subject
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if c == 2 and row.result in COLORS:
                    item.setForeground(QColor(COLORS[row.result]))
                self.table.setItem(r, c, item)
        failed = len(report.failures)
        self.status.setText(
            "All checks passed." if report.ok else f"{failed} check{'s' * (failed != 1)} failed."
        )

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.cancel()
        super().closeEvent(event)
