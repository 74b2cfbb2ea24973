"""The set-up window's offer when no models are found: the seed's pair (Qwen3-VL-8B with
its projector, and an LLM sized to this machine), with sizes and fit, one click to get
both, and their progress. What to offer and the downloads are ``app.core.downloads``'s."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QProgressBar, QPushButton, QVBoxLayout

from app.core.downloads.jobs import COMPLETED, DownloadJob, describe_progress
from app.core.downloads.refs import DownloadRefused, HubError
from app.core.downloads.service import Downloads
from app.core.downloads.starter import Offer, get_offer, starter_offer
from app.core.units import size_text

log = logging.getLogger(__name__)


class StarterPanel(QGroupBox):
    """Shown by the set-up window when no model is found. ``on_change(jobs)`` after the
    pair is queued and whenever a download of it moves or ends."""

    def __init__(
        self, downloads: Downloads, on_change: Callable[[list[DownloadJob]], None]
    ) -> None:
        super().__init__("No models on this computer yet: get the seed's pair")
        self.downloads = downloads
        self.on_change = on_change
        self.offers: list[Offer] = []
        self.jobs: list[DownloadJob] = []
        lay = QVBoxLayout(self)
        self.intro = QLabel(
            "FamilyLog uses a vision model (photos) and an LLM (text). Looking up the "
            "suggested pair for this computer on the Hugging Face Hub…"
        )
        self.intro.setWordWrap(True)
        lay.addWidget(self.intro)
        self.offer_labels: list[QLabel] = []
        self.offer_box = QVBoxLayout()
        lay.addLayout(self.offer_box)
        self.get_button = QPushButton("Get both")
        self.get_button.setEnabled(False)
        self.get_button.clicked.connect(self.get)
        lay.addWidget(self.get_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.bars: list[QProgressBar] = []
        self.bar_box = QVBoxLayout()
        lay.addLayout(self.bar_box)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        self._unsubscribe = downloads.subscribe(self.refresh)

    def close_panel(self) -> None:
        self._unsubscribe()

    async def load(self) -> None:
        """Ask the hub for the pair; one line when it cannot be asked."""
        try:
            self.offers = await starter_offer(self.downloads)
        except HubError as e:
            self.intro.setText(f"Cannot suggest models: {e}")
            return
        for offer in self.offers:
            label = QLabel(offer.describe())
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.offer_box.addWidget(label)
            self.offer_labels.append(label)
        total = sum(o.model.total_size for o in self.offers)
        where = self.downloads.model_dir()
        self.intro.setText(
            f"FamilyLog uses a vision model (photos) and an LLM (text). Suggested for this "
            f"computer, {size_text(total)} in all, into {where} (where LM Studio sees them too):"
        )
        self.get_button.setText(f"Get both ({size_text(total)})")
        self.get_button.setEnabled(True)

    def get(self):
        from app.ui.tasks import spawn

        return spawn(self._get(), "get the starter models")

    async def _get(self) -> None:
        self.get_button.setEnabled(False)
        try:
            self.jobs = await get_offer(self.downloads, self.offers)
        except DownloadRefused as e:
            self.status.setText(str(e))
            self.get_button.setEnabled(True)
            return
        for _job in self.jobs:
            bar = QProgressBar()
            bar.setRange(0, 1000)
            self.bar_box.addWidget(bar)
            self.bars.append(bar)
        self.status.setText(
            "You can Save now: each model becomes FamilyLog's once it has arrived and been "
            "checked, and the downloads go on in the tray (Get models…)."
        )
        self.refresh()

    def refresh(self) -> None:
        for job, bar in zip(self.jobs, self.bars, strict=False):
            bar.setValue(int(1000 * job.downloaded / job.total) if job.total else 0)
            if job.state == COMPLETED:
                bar.setValue(1000)
                bar.setFormat(f"{job.model}: done")
            elif job.error:
                bar.setFormat(f"{job.model}: {job.state}")
                bar.setToolTip(job.error)
            else:
                bar.setFormat(describe_progress(job) if job.active else f"{job.model}: {job.state}")
        if self.jobs:
            self.on_change(self.jobs)
