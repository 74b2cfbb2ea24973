"""Build the one-folder app for this OS with PyInstaller.

    uv run --group packaging python packaging/build.py [--dist DIR]

1. renders the icons from resources/icons/familylog-tray.svg (Qt's SVG renderer);
2. writes the Windows version resource from app/__init__.py's version;
3. runs PyInstaller with packaging/familylog-tray.spec;
4. on Linux, adds share/applications/familylog-tray.desktop and share/icons/hicolor/* to the
   bundle, so ``cp -r dist/familylog-tray/share ~/.local/`` installs the menu entry.

Prints the bundle's path and how long each step took.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "build" / "packaging"
NAME = "familylog-tray"


def app_version() -> str:
    ns: dict[str, str] = {}
    exec((ROOT / "app" / "__init__.py").read_text(), ns)
    return ns["__version__"]


def write_version_resource() -> Path:
    version = app_version()
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:3]] + [0, 0, 0]
    template = (ROOT / "packaging" / "windows" / "version_info.txt.in").read_text()
    body = "\n".join(line for line in template.splitlines() if not line.startswith("#"))
    out = GEN / "version_info.txt"
    out.write_text(body.format(v0=parts[0], v1=parts[1], v2=parts[2], version=version) + "\n")
    return out


def install_linux_extras(bundle: Path, icons: Path) -> None:
    share = bundle / "share"
    apps = share / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    desktop = (ROOT / "packaging" / "linux" / f"{NAME}.desktop").read_text()
    # Point Exec at the bundle's binary so the menu entry works without PATH changes.
    desktop = desktop.replace(f"Exec={NAME}", f'Exec="{bundle.resolve() / NAME}"')
    (apps / f"{NAME}.desktop").write_text(desktop)
    shutil.copytree(icons / "hicolor", share / "icons" / "hicolor", dirs_exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the bundle goes")
    args = p.parse_args(argv)
    GEN.mkdir(parents=True, exist_ok=True)
    timings: list[tuple[str, float]] = []

    t = time.monotonic()
    sys.path.insert(0, str(ROOT / "packaging"))
    from icons import render_icons  # packaging/icons.py

    icons_dir = GEN / "icons"
    render_icons(icons_dir)
    write_version_resource()
    timings.append(("icons and version resource", time.monotonic() - t))

    t = time.monotonic()
    cmd = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
        "--distpath", str(args.dist), "--workpath", str(GEN / "work"),
        str(ROOT / "packaging" / f"{NAME}.spec"),
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT)
    timings.append(("PyInstaller", time.monotonic() - t))
    if r.returncode != 0:
        print(f"build.py: PyInstaller failed with code {r.returncode}", file=sys.stderr)
        return r.returncode

    bundle = args.dist / NAME
    if sys.platform.startswith("linux"):
        install_linux_extras(bundle, icons_dir)
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    for step, seconds in timings:
        print(f"{step}: {seconds:.1f} s")
    print(f"bundle: {bundle} ({size / 2**20:.0f} MiB)")
    if sys.platform == "darwin":
        print(f"app: {args.dist / 'FamilyLog Tray.app'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
