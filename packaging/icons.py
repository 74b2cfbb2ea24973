"""Render the app icon (resources/icons/familylog-tray.svg) to PNGs in the freedesktop sizes,
and a Windows .ico, with Qt's SVG renderer. Nothing binary is kept in git."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "icons" / "familylog-tray.svg"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 32, 48, 256)


def render_icons(out: Path, svg: Path = SVG) -> dict[str, Path]:
    """Write ``out/hicolor/NxN/apps/familylog-tray.png`` for every size (plus ``scalable``)
    and ``out/familylog-tray.ico``; return the main files by name."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"Cannot read the icon {svg}")

    def image(size: int) -> QImage:
        img = QImage(size, size, QImage.Format.Format_ARGB32)
        img.fill(Qt.GlobalColor.transparent)
        painter = QPainter(img)
        renderer.render(painter)
        painter.end()
        return img

    files: dict[str, Path] = {}
    for size in SIZES:
        dest = out / "hicolor" / f"{size}x{size}" / "apps" / "familylog-tray.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not image(size).save(str(dest), "PNG"):
            raise SystemExit(f"Cannot write {dest}")
        files[f"png{size}"] = dest
    scalable = out / "hicolor" / "scalable" / "apps" / "familylog-tray.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    scalable.write_bytes(svg.read_bytes())
    files["svg"] = scalable
    files["ico"] = _write_ico(out / "familylog-tray.ico", [image(s) for s in ICO_SIZES])
    return files


def _write_ico(dest: Path, images: list) -> Path:
    """An .ico holding PNG-compressed images (valid since Windows Vista)."""
    import struct

    from PySide6.QtCore import QBuffer, QIODevice

    blobs = []
    for img in images:
        buf = QBuffer()
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        img.save(buf, "PNG")
        blobs.append((img.width(), bytes(buf.data())))
    header = struct.pack("<HHH", 0, 1, len(blobs))
    offset = 6 + 16 * len(blobs)
    entries, data = b"", b""
    for size, blob in blobs:
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset + len(data))
        data += blob
    dest.write_bytes(header + entries + data)
    return dest


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "icons"
    for name, path in render_icons(target).items():
        print(f"{name}: {path}")
