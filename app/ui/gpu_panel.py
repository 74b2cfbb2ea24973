"""The GPU panel: per device used / total as a bar and numbers, and each server's share."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QGroupBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from app.core.gpu.snapshot import GpuSnapshot
from app.core.units import gb


@dataclass(frozen=True)
class ServerShare:
    label: str  # "LLM :8082"
    pid: int


class GpuPanel(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("GPU memory", parent)
        self._layout = QVBoxLayout(self)
        self.summary = QLabel("Probing…")
        self._layout.addWidget(self.summary)
        self._dynamic: list[QWidget] = []
        self.bars: list[QProgressBar] = []
        self.share_labels: list[QLabel] = []

    def update_snapshot(self, snap: GpuSnapshot, servers: list[ServerShare]) -> None:
        for w in self._dynamic:
            self._layout.removeWidget(w)
            w.deleteLater()
        self._dynamic, self.bars, self.share_labels = [], [], []
        if snap.has_gpu:
            self.summary.setText(f"Source: {snap.source}")
            for dev in snap.devices:
                self._bar(f"{dev.index}: {dev.name}", dev.used_mib, dev.total_mib)
        else:
            self.summary.setText("No GPU found: showing host memory and each server's RSS.")
            self._bar("Host RAM", snap.host_used_mib, snap.host_total_mib)
        for server in servers:
            gpu = snap.gpu_mib_of(server.pid)
            rss = snap.rss_mib.get(server.pid)
            parts = []
            if gpu is not None:
                parts.append(f"{gb(gpu)} GB on GPU")
            if rss is not None:
                parts.append(f"RSS {rss:.0f} MiB")
            text = f"{server.label} (PID {server.pid}): " + (", ".join(parts) or "not reported")
            label = QLabel(text)
            label.setWordWrap(True)  # a long model key must not widen the window
            self.share_labels.append(label)
            self._add(label)

    def _bar(self, name: str, used: float, total: float) -> None:
        self._add(QLabel(name))
        bar = QProgressBar()
        bar.setRange(0, max(1, int(total)))
        bar.setValue(int(min(used, total)))
        bar.setFormat(f"{gb(used)} / {gb(total)} GB ({used / total:.0%})" if total else "?")
        bar.setTextVisible(True)
        self.bars.append(bar)
        self._add(bar)

    def _add(self, w: QWidget) -> None:
        self._dynamic.append(w)
        self._layout.addWidget(w)
