"""The benchmark's bar chart, drawn with QPainter into a QImage (works offscreen): two
panels, prompt and generation tokens/s, a group of bars per prompt, one bar per server."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter

from app.core.bench.results import ResultRow

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
PANELS = (
    ("prompt_tokens_per_second", "Prompt tokens/s"),
    ("generation_tokens_per_second", "Generation tokens/s"),
)


def ensure_gui() -> None:
    """Fonts need a QGuiApplication; the command line makes an offscreen one."""
    if QGuiApplication.instance() is None:
        import os

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtWidgets import QApplication

        # a QApplication, not only a QGuiApplication: a process that shows widgets later
        # (the tests) cannot replace it
        ensure_gui.app = QApplication([])  # type: ignore[attr-defined]


def render_chart(rows: list[ResultRow], width: int = 960, height: int = 420) -> QImage:
    ensure_gui()
    img = QImage(width, height, QImage.Format.Format_ARGB32)
    img.fill(QColor("white"))
    servers = list(dict.fromkeys(f"{r.server} ({r.model})" for r in rows))
    prompts = list(dict.fromkeys(r.prompt for r in rows))
    by = {(f"{r.server} ({r.model})", r.prompt): r for r in rows}
    p = QPainter(img)
    try:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(p.font())
        font.setPixelSize(12)
        p.setFont(font)
        legend_h = 22 * len(servers) + 10
        panel_w = width / len(PANELS)
        for n, (field, title) in enumerate(PANELS):
            area = QRectF(n * panel_w + 64, 34, panel_w - 84, height - 34 - 40 - legend_h)
            _panel(p, area, title, field, servers, prompts, by)
        for i, s in enumerate(servers):
            y = height - legend_h + 6 + 22 * i
            p.fillRect(QRectF(50, y, 14, 14), QColor(COLORS[i % len(COLORS)]))
            p.setPen(QColor("black"))
            p.drawText(QRectF(70, y - 2, width - 80, 18), Qt.AlignmentFlag.AlignVCenter, s)
    finally:
        p.end()
    return img


def _panel(p: QPainter, area: QRectF, title, field, servers, prompts, by) -> None:
    values = [getattr(r, field) or 0.0 for r in by.values()]
    top = max(values + [1.0]) * 1.15
    p.setPen(QColor("black"))
    bold = QFont(p.font())
    bold.setBold(True)
    p.save()
    p.setFont(bold)
    p.drawText(QRectF(area.left(), 6, area.width(), 22), Qt.AlignmentFlag.AlignCenter, title)
    p.restore()
    p.setPen(QColor("#888"))
    p.drawLine(area.bottomLeft(), area.bottomRight())
    p.drawLine(area.bottomLeft(), area.topLeft())
    for k in range(5):  # grid and scale
        v = top * k / 4
        y = area.bottom() - area.height() * k / 4
        p.setPen(QColor("#ddd"))
        p.drawLine(int(area.left()), int(y), int(area.right()), int(y))
        p.setPen(QColor("#555"))
        p.drawText(QRectF(area.left() - 62, y - 8, 58, 16), Qt.AlignmentFlag.AlignRight, _num(v))
    group_w = area.width() / max(1, len(prompts))
    bar_w = group_w * 0.8 / max(1, len(servers))
    for g, prompt in enumerate(prompts):
        x0 = area.left() + g * group_w + group_w * 0.1
        for i, server in enumerate(servers):
            row = by.get((server, prompt))
            v = getattr(row, field) if row is not None else None
            if v is None:
                continue
            h = area.height() * v / top
            bar = QRectF(x0 + i * bar_w, area.bottom() - h, bar_w - 2, h)
            p.fillRect(bar, QColor(COLORS[i % len(COLORS)]))
            p.setPen(QColor("black"))
            p.drawText(
                QRectF(bar.left() - 10, bar.top() - 16, bar.width() + 20, 14),
                Qt.AlignmentFlag.AlignCenter,
                _num(v),
            )
        p.setPen(QColor("black"))
        p.drawText(
            QRectF(area.left() + g * group_w, area.bottom() + 4, group_w, 18),
            Qt.AlignmentFlag.AlignCenter,
            prompt,
        )


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def save_chart(rows: list[ResultRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not render_chart(rows).save(str(path), "PNG"):
        raise OSError(f"Could not write the chart to {path}")
    return path
