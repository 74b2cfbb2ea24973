"""The Benchmark window: pick a model and the runs (and another server to compare with),
Start, watch the progress bar, Cancel; then the table and the bar chart. The work is
``app.core.bench``'s, against the app's own API; results are kept in the app home."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.app_core import AppCore
from app.core.bench.prompts import PromptSizes, prompt_set, sample_image
from app.core.bench.results import TABLE_HEADS, ResultRow, save_results, summarize, table_cells
from app.core.bench.runner import BenchmarkError, Target, get_json, run_benchmark
from app.paths import AppPaths
from app.ui.bench_chart import render_chart
from app.ui.tasks import spawn

log = logging.getLogger(__name__)


class BenchmarkWindow(QWidget):
    def __init__(self, core: AppCore, paths: AppPaths, sizes: PromptSizes | None = None) -> None:
        super().__init__()
        self.core, self.paths = core, paths
        self.sizes = sizes or PromptSizes()
        self.setWindowTitle("FamilyLog Tray: benchmark")
        self.rows: list[ResultRow] = []
        self.task: asyncio.Task | None = None
        self.saved: tuple = ()
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.model_box = QComboBox()
        form.addRow("Model", self.model_box)
        self.runs_box = QSpinBox()
        self.runs_box.setRange(1, 100)
        self.runs_box.setValue(3)
        form.addRow("Runs", self.runs_box)
        self.against_box = QLineEdit()
        self.against_box.setPlaceholderText("optional: http://127.0.0.1:1235/v1 (LM Studio…)")
        form.addRow("Compare with", self.against_box)
        self.against_model_box = QLineEdit()
        self.against_model_box.setPlaceholderText("its model (default: the first it lists)")
        form.addRow("Its model", self.against_model_box)
        lay.addLayout(form)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        lay.addLayout(buttons)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.table = QTableWidget(0, len(TABLE_HEADS))
        self.table.setHorizontalHeaderLabels(list(TABLE_HEADS))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.table, 1)
        self.chart = QLabel()
        self.chart.setMinimumHeight(200)
        lay.addWidget(self.chart, 2)
        self.resize(1000, 860)
        self.fill_models()

    def fill_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        loaded = {i.key for i in self.core.lifecycle.loaded()}
        entries = [e for e in self.core.catalogue.entries() if e.type == "llm"]
        entries.sort(key=lambda e: e.key not in loaded)
        for e in entries:
            self.model_box.addItem(f"{e.title} ({e.key})" if e.role else e.key, e.key)
        if current is not None and (i := self.model_box.findData(current)) >= 0:
            self.model_box.setCurrentIndex(i)

    def start(self) -> asyncio.Task | None:
        api = self.core.api
        if api is None or not api.url:
            self.status.setText("The app's API is off (see Settings → API): it runs the benchmark.")
            return None
        key = self.model_box.currentData()
        if not key:
            self.status.setText("No model to benchmark.")
            return None
        entry = self.core.catalogue.find(key)
        image = sample_image() if entry is not None and entry.vision else None
        api_key = self.core.settings.API_KEY.get_secret_value()
        targets = [Target("app", f"{api.url}/v1", key, api_key)]
        other = self.against_box.text().strip().rstrip("/")
        if other:
            targets.append(Target(other, other, self.against_model_box.text().strip() or ""))
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Running…")
        self.task = spawn(self._run(targets, image), "Benchmark")
        return self.task

    async def _run(self, targets: list[Target], image) -> None:
        try:
            if len(targets) > 1 and not targets[1].model:
                targets[1] = await _first_model(targets[1])
            prompts = prompt_set(self.sizes, image=image)
            ms = await run_benchmark(
                targets, prompts, self.runs_box.value(), progress=self._progress
            )
        except asyncio.CancelledError:
            self.status.setText("Cancelled.")
            raise
        except (BenchmarkError, OSError, aiohttp.ClientError) as e:
            self.status.setText(f"Failed: {e}")
            return
        finally:
            self.start_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
        self.rows = summarize(ms)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        json_path, csv_path = save_results(self.paths.bench_dir, self.rows, ms, stamp)
        image_path = self.paths.bench_dir / f"benchmark-{stamp}.png"
        chart = render_chart(self.rows)
        chart.save(str(image_path), "PNG")
        self.saved = (json_path, csv_path, image_path)
        self.show_results(chart)
        self.status.setText(f"Done. Saved in {self.paths.bench_dir}")
        log.info("Benchmark done: %s", json_path)

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText(what)

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def show_results(self, chart) -> None:
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, text in enumerate(table_cells(row)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.chart.setPixmap(QPixmap.fromImage(chart).scaledToWidth(max(400, self.width() - 40)))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.cancel()
        super().closeEvent(event)


async def _first_model(target: Target) -> Target:
    listed = (await get_json(f"{target.url}/models")).get("data") or []
    if not listed:
        raise BenchmarkError(f"{target.url} lists no model")
    return Target(target.server, target.url, listed[0]["id"], target.api_key)
