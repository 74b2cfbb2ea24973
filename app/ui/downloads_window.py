"""The "Get models…" window: search the Hugging Face Hub for GGUF repositories, see a
repository's models (size, quantization, projector, whether each fits this machine), get
one, and watch the queue (progress bars, speed, time left, cancel).

Everything it shows and does is the download service's (``app.core.downloads``); this
module only lays it out and calls its coroutines on the qasync loop.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.downloads.files import RemoteModel, RepoFiles
from app.core.downloads.fit import FITS, NO_FIT, TIGHT, Fit
from app.core.downloads.jobs import DOWNLOADING, VERIFYING, DownloadJob, describe_progress
from app.core.downloads.refs import DownloadRefused, HubError, RepoHit
from app.core.downloads.service import Downloads
from app.core.units import elapsed_text, size_text
from app.ui.first_run_table import read_only_item
from app.ui.tasks import spawn

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("Repository", "Downloads", "Access")
FILE_COLUMNS = ("Model file", "Quantization", "Size", "Projector (vision)", "Fits this machine?")
QUEUE_COLUMNS = ("Model", "Repository", "State", "Progress", "Speed", "Left", "")
FIT_MARK = {FITS: "✔ fits", TIGHT: "⚠ tight", NO_FIT: "✘ does not fit"}


def _table(columns: tuple[str, ...]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.verticalHeader().setVisible(False)
    t.setWordWrap(False)
    header = t.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return t


def fit_text(fit: Fit | None, problem: str | None = None) -> tuple[str, str]:
    """The cell's text and tooltip for a fit (or why it is unknown)."""
    if fit is None:
        return ("?", problem or "") if problem else ("checking…", "")
    return FIT_MARK[fit.verdict], fit.describe()


def left_text(job: DownloadJob) -> str:
    left = job.seconds_left()
    return "" if left is None else elapsed_text(left)


class GetModelsWindow(QWidget):
    """Search, files with fit, queue. ``downloads``: the core's download service."""

    def __init__(self, downloads: Downloads) -> None:
        super().__init__()
        self.downloads = downloads
        self.setWindowTitle("FamilyLog Tray: get models")
        self.hits: list[RepoHit] = []
        self.files: RepoFiles | None = None
        self.fits: dict[str, Fit | str] = {}  # model name -> its fit, or why it is unknown
        self._tasks: set = set()
        root = QVBoxLayout(self)

        row = QHBoxLayout()
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText(
            "Search the Hugging Face Hub for GGUF models, e.g. qwen3"
        )
        self.search_box.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        row.addWidget(self.search_box, 1)
        row.addWidget(self.search_button)
        root.addLayout(row)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.results = _table(RESULT_COLUMNS)
        self.results.itemSelectionChanged.connect(self._repo_selected)
        split.addWidget(self.results)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.repo_label = QLabel("Pick a repository to see its models.")
        self.repo_label.setWordWrap(True)
        rl.addWidget(self.repo_label)
        self.file_table = _table(FILE_COLUMNS)
        self.file_table.itemSelectionChanged.connect(self._update_buttons)
        self.file_table.itemDoubleClicked.connect(lambda _item: self.get_selected())
        rl.addWidget(self.file_table, 1)
        self.get_button = QPushButton("Get")
        self.get_button.clicked.connect(self.get_selected)
        gl = QHBoxLayout()
        gl.addStretch(1)
        gl.addWidget(self.get_button)
        rl.addLayout(gl)
        split.addWidget(right)
        split.setSizes([350, 650])
        root.addWidget(split, 3)

        root.addWidget(QLabel("Downloads"))
        self.queue = _table(QUEUE_COLUMNS)
        self.queue.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        root.addWidget(self.queue, 2)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.message)
        where = downloads.model_dir()
        self.where_label = QLabel(
            f"Models go to {where} (the first of MODEL_DIRS), as LM Studio keeps them."
        )
        self.where_label.setWordWrap(True)
        root.addWidget(self.where_label)

        self.resize(1100, 720)
        self._unsubscribe = downloads.subscribe(self.refresh_queue)
        self.destroyed.connect(lambda *_: self._unsubscribe())
        self.refresh_queue()
        self._update_buttons()

    # ── Running core coroutines ───────────────────────────────────────────────
    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str):
        task = spawn(coro, what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self) -> None:
        """Until every search, listing and fit check started here is done (tests)."""
        import asyncio

        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def say(self, text: str) -> None:
        self.message.setText(text)

    # ── Search ────────────────────────────────────────────────────────────────
    def search(self):
        query = self.search_box.text().strip()
        self.say("Searching…")
        return self._spawn(self._search(query), "search")

    async def _search(self, query: str) -> None:
        try:
            hits = await self.downloads.search(query)
        except HubError as e:
            self.say(str(e))
            return
        self.hits = hits
        self.results.setRowCount(len(hits))
        for row, h in enumerate(hits):
            self.results.setItem(row, 0, read_only_item(h.repo, h.repo))
            self.results.setItem(row, 1, read_only_item(f"{h.downloads:,}"))
            self.results.setItem(row, 2, read_only_item("gated: licence" if h.gated else "open"))
        self.say(f"{len(hits)} GGUF repositories." if hits else "No GGUF repositories found.")

    def _repo_selected(self) -> None:
        rows = self.results.selectionModel().selectedRows()
        if rows:
            self.open_repo(self.hits[rows[0].row()].repo)

    # ── One repository ────────────────────────────────────────────────────────
    def open_repo(self, repo: str):
        self.repo_label.setText(f"{repo}: reading its files…")
        self.file_table.setRowCount(0)
        self.files = None
        return self._spawn(self._open_repo(repo), "list files")

    async def _open_repo(self, repo: str) -> None:
        try:
            files = await self.downloads.repo_files(repo)
        except HubError as e:
            self.repo_label.setText(f"{repo}: {e}")
            return
        self.files, self.fits = files, {}
        gated = " Gated: its licence must be accepted on the hub first." if files.gated else ""
        problems = (" " + " ".join(files.problems)) if files.problems else ""
        count = len(files.models)
        self.repo_label.setText(
            f"{repo}: {count} model file(s) in {len(files.groups())} model(s).{gated}{problems}"
            if count
            else f"{repo} has no GGUF model files.{problems}"
        )
        self._fill_files()
        for model in files.models:  # one header per model family, read from its beginning
            await self._check_fit(files, model)

    def _fill_files(self) -> None:
        files = self.files
        models = [m for group in files.groups().values() for m in group] if files else []
        self.file_table.setRowCount(len(models))
        for row, m in enumerate(models):
            self.file_table.setItem(
                row, 0, read_only_item(m.label(), "\n".join(f.path for f in m.files))
            )
            self.file_table.setItem(row, 1, read_only_item(m.quant or "?"))
            size = size_text(m.total_size)
            self.file_table.setItem(
                row,
                2,
                read_only_item(
                    size, f"model {size_text(m.size)}" + (" + projector" if m.mmproj else "")
                ),
            )
            self.file_table.setItem(row, 3, read_only_item(m.mmproj.name if m.mmproj else ""))
            found = self.fits.get(m.name)
            text, tip = fit_text(
                found if isinstance(found, Fit) else None, found if isinstance(found, str) else None
            )
            self.file_table.setItem(row, 4, read_only_item(text, tip))
        self._update_buttons()

    async def _check_fit(self, files: RepoFiles, model: RemoteModel) -> None:
        try:
            self.fits[model.name] = await self.downloads.fit(files, model)
        except (HubError, ValueError) as e:
            self.fits[model.name] = str(e)
        if self.files is files:
            self._fill_files_keep_selection()

    def _fill_files_keep_selection(self) -> None:
        selected = self.selected_model()
        self._fill_files()
        if selected is not None:
            self.select_model(selected.name)

    def models_shown(self) -> list[RemoteModel]:
        files = self.files
        return [m for group in files.groups().values() for m in group] if files else []

    def selected_model(self) -> RemoteModel | None:
        rows = self.file_table.selectionModel().selectedRows()
        models = self.models_shown()
        return models[rows[0].row()] if rows and rows[0].row() < len(models) else None

    def select_model(self, name: str) -> None:
        for row, m in enumerate(self.models_shown()):
            if m.name == name:
                self.file_table.selectRow(row)
                return
        raise KeyError(name)

    def _update_buttons(self) -> None:
        self.get_button.setEnabled(self.selected_model() is not None)

    # ── Getting ───────────────────────────────────────────────────────────────
    def get_selected(self):
        model, files = self.selected_model(), self.files
        if model is None or files is None:
            return None
        return self._spawn(self._get(files, model), "download")

    async def _get(self, files: RepoFiles, model: RemoteModel) -> None:
        try:
            job = await self.downloads.enqueue(files, model)
        except DownloadRefused as e:
            self.say(str(e))
            return
        if job.already:
            where = f'listed as "{job.model_key}"' if job.model_key else str(job.model_path)
            self.say(f"{job.model} is downloaded already: {where}.")
        else:
            self.say(f"Getting {job.model} ({size_text(job.total)}).")
        self.refresh_queue()

    # ── The queue ─────────────────────────────────────────────────────────────
    def shown_jobs(self) -> list[DownloadJob]:
        jobs = [j for j in self.downloads.jobs() if not j.already]
        return sorted(jobs, key=lambda j: (not j.active, -j.created_at))

    def refresh_queue(self) -> None:
        jobs = self.shown_jobs()
        self.queue.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            state = job.state if not job.error else f"{job.state}: {job.error}"
            self.queue.setItem(row, 0, read_only_item(job.model, job.title))
            self.queue.setItem(row, 1, read_only_item(job.repo))
            self.queue.setItem(row, 2, read_only_item(state, job.error or ""))
            bar = self.queue.cellWidget(row, 3)
            if not isinstance(bar, QProgressBar):
                bar = QProgressBar()
                self.queue.setCellWidget(row, 3, bar)
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * job.downloaded / job.total) if job.total else 0)
            bar.setFormat(f"{size_text(job.downloaded)} / {size_text(job.total)}")
            running = job.state in (DOWNLOADING, VERIFYING)
            speed = f"{job.speed / 1e6:.1f} MB/s" if running and job.speed else ""
            self.queue.setItem(row, 4, read_only_item(speed))
            self.queue.setItem(
                row, 5, read_only_item(left_text(job), describe_progress(job) if running else "")
            )
            button = self.queue.cellWidget(row, 6)
            if job.active:
                if not isinstance(button, QPushButton) or button.property("job") != job.id:
                    button = QPushButton("Cancel")
                    button.setProperty("job", job.id)
                    button.clicked.connect(lambda _=False, jid=job.id: self.cancel(jid))
                    self.queue.setCellWidget(row, 6, button)
            elif button is not None:
                self.queue.removeCellWidget(row, 6)

    def cancel(self, job_id: str) -> bool:
        done = self.downloads.cancel(job_id)
        self.refresh_queue()
        return done
