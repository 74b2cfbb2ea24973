"""Start at login: every OS branch by injection and a real round trip here (the command
line's ``--start-at-login`` is in ``tests/cli/test_start_at_login.py``)."""

from __future__ import annotations

import configparser
import os
import plistlib
import sys
from pathlib import Path

import pytest

from app.platform.autostart import (
    AutostartError,
    LaunchAgent,
    WindowsRunKey,
    XdgAutostart,
    autostart_for,
    launch_command,
)
from app.platform.autostart.launch_command import is_checkout
from app.platform.autostart.linux import exec_line
from app.platform.autostart.windows import APPROVED_KEY, RUN_KEY, VALUE_NAME
from tests.platform.fake_winreg import FakeWinreg

CMD = ["/opt/Family Log/familylog-tray", "--autostart"]


def desktop_exec_argv(raw: str) -> list[str]:
    """Undo the Desktop Entry escapes: string escapes, then %%, then the Exec quoting."""
    text = raw.replace("\\\\", "\x00").replace("\\s", " ").replace("\x00", "\\")
    text = text.replace("%%", "%")
    args: list[str] = []
    cur: list[str] | None = None
    i, quoted = 0, False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
                cur.append(text[i])  # type: ignore[union-attr]
            elif c == '"':
                quoted = False
            else:
                cur.append(c)  # type: ignore[union-attr]
        elif c == " ":
            if cur is not None:
                args.append("".join(cur))
            cur = None
        else:
            cur = cur if cur is not None else []
            if c == '"':
                quoted = True
            else:
                cur.append(c)
        i += 1
    if cur is not None:
        args.append("".join(cur))
    return args


def read_entry(path: Path) -> configparser.SectionProxy:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(path.read_text())
    return cp["Desktop Entry"]


# ── The real round trip on this Linux machine ─────────────────────────────────
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG autostart is Linux")
def test_linux_round_trip_in_the_fake_home(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    assert home.is_relative_to(tmp_path), "the autouse fixture must point HOME at a temp dir"
    entry = autostart_for()
    assert isinstance(entry, XdgAutostart)
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "familylog-tray.desktop"
    assert entry.location == str(expected)
    assert not entry.is_enabled()

    entry.enable()
    assert expected.is_file()
    fields = read_entry(expected)
    assert fields["Type"] == "Application"
    assert fields["X-GNOME-Autostart-enabled"] == "true"
    assert int(fields["X-GNOME-Autostart-Delay"]) > 0
    assert desktop_exec_argv(fields["Exec"]) == launch_command()
    assert desktop_exec_argv(fields["Exec"])[-1] == "--autostart"
    assert entry.is_enabled()

    assert entry.disable() is True
    assert not expected.exists()
    assert not entry.is_enabled()
    assert entry.disable() is False


def test_linux_enable_twice_is_harmless(tmp_path: Path) -> None:
    entry = XdgAutostart(CMD, tmp_path / "cfg")
    entry.enable()
    first = Path(entry.location).read_text()
    entry.enable()
    assert Path(entry.location).read_text() == first
    assert [p.name for p in Path(entry.location).parent.iterdir()] == ["familylog-tray.desktop"]


@pytest.mark.parametrize(
    "arg",
    ["/opt/Family Log/familylog-tray", 'a"b', "c$d", "back\\slash", "100%", "tab\there", "plain"],
)
def test_linux_exec_quoting_round_trips(arg: str, tmp_path: Path) -> None:
    entry = XdgAutostart([arg, "--autostart"], tmp_path)
    entry.enable()
    assert desktop_exec_argv(read_entry(Path(entry.location))["Exec"]) == [arg, "--autostart"]


def test_exec_line_quotes_a_path_with_spaces() -> None:
    assert exec_line(CMD) == '"/opt/Family Log/familylog-tray" --autostart'


@pytest.mark.parametrize("line", ["Hidden=true", "X-GNOME-Autostart-enabled=false"])
def test_linux_entry_turned_off_by_the_desktop_reads_off(line: str, tmp_path: Path) -> None:
    entry = XdgAutostart(CMD, tmp_path)
    entry.enable()
    path = Path(entry.location)
    text = path.read_text().replace("X-GNOME-Autostart-enabled=true\n", "")
    path.write_text(text + line + "\n")
    assert not entry.is_enabled()
    entry.enable()
    assert entry.is_enabled()


def test_linux_removed_by_hand_reads_off_and_stays_off(tmp_path: Path) -> None:
    entry = XdgAutostart(CMD, tmp_path)
    entry.enable()
    Path(entry.location).unlink()
    assert not entry.is_enabled()
    assert not XdgAutostart(CMD, tmp_path).is_enabled()


def test_linux_disable_leaves_a_file_it_did_not_write(tmp_path: Path) -> None:
    entry = XdgAutostart(CMD, tmp_path)
    path = Path(entry.location)
    path.parent.mkdir(parents=True)
    other = "[Desktop Entry]\nType=Application\nExec=someone-else\n"
    path.write_text(other)
    with pytest.raises(AutostartError, match="not written by"):
        entry.disable()
    assert path.read_text() == other


def test_linux_unwritable_folder_is_a_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "cfg"
    blocker.write_text("a file where the config folder should be")
    with pytest.raises(AutostartError, match="Cannot write the autostart entry"):
        XdgAutostart(CMD, blocker).enable()


def test_xdg_config_home_relative_value_is_ignored(tmp_path: Path) -> None:
    from app.platform.autostart.linux import xdg_config_home

    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "relative/cfg"}
    assert xdg_config_home(env) == tmp_path / ".config"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "abs")
    assert xdg_config_home(env) == tmp_path / "abs"


# ── macOS, by injection ───────────────────────────────────────────────────────
def test_macos_launch_agent_round_trip(tmp_path: Path) -> None:
    entry = autostart_for("darwin", home=tmp_path, command=CMD)
    assert isinstance(entry, LaunchAgent)
    plist = tmp_path / "Library" / "LaunchAgents" / "com.familylog.tray.plist"
    assert entry.location == str(plist)
    assert not entry.is_enabled()
    entry.enable()
    entry.enable()
    data = plistlib.loads(plist.read_bytes())
    assert data["ProgramArguments"] == CMD
    assert data["RunAtLoad"] is True
    assert data["Label"] == "com.familylog.tray"
    assert entry.is_enabled()
    assert entry.disable() is True
    assert not plist.exists() and not entry.is_enabled()
    assert entry.disable() is False


def test_macos_disabled_key_reads_off_and_foreign_plist_is_kept(tmp_path: Path) -> None:
    entry = LaunchAgent(CMD, tmp_path)
    entry.enable()
    plist = Path(entry.location)
    data = plistlib.loads(plist.read_bytes())
    plist.write_bytes(plistlib.dumps({**data, "Disabled": True}))
    assert not entry.is_enabled()
    plist.write_bytes(plistlib.dumps({"Label": "org.other.agent", "RunAtLoad": True}))
    assert not entry.is_enabled()
    with pytest.raises(AutostartError, match="not written by"):
        entry.disable()
    assert plist.exists()


# ── Windows, by injection ─────────────────────────────────────────────────────
def test_windows_run_key_round_trip() -> None:
    reg = FakeWinreg()
    reg.keys[RUN_KEY.lower()] = {"OneDrive": ("C:\\OneDrive.exe /background", reg.REG_SZ)}
    entry = autostart_for(
        "win32", registry=reg, command=["C:\\Program Files\\FLT\\flt.exe", "--autostart"]
    )
    assert isinstance(entry, WindowsRunKey)
    assert entry.location.startswith("HKEY_CURRENT_USER\\Software\\Microsoft")
    assert not entry.is_enabled()
    entry.enable()
    entry.enable()
    value, kind = reg.keys[RUN_KEY.lower()][VALUE_NAME]
    assert value == '"C:\\Program Files\\FLT\\flt.exe" --autostart' and kind == reg.REG_SZ
    assert entry.is_enabled()
    assert entry.disable() is True
    assert VALUE_NAME not in reg.keys[RUN_KEY.lower()]
    assert "OneDrive" in reg.keys[RUN_KEY.lower()], "disable must remove only the app's value"
    assert not entry.is_enabled()
    assert entry.disable() is False
    assert all(h.closed for h in reg.opened)


def test_windows_task_manager_disable_reads_off_and_enable_clears_it() -> None:
    reg = FakeWinreg()
    entry = WindowsRunKey(["flt.exe", "--autostart"], reg)
    entry.enable()
    # What Task Manager writes when the user disables the entry: 03 00 00 00 + a FILETIME.
    reg.keys[APPROVED_KEY.lower()] = {VALUE_NAME: (b"\x03" + bytes(11), reg.REG_BINARY)}
    assert not entry.is_enabled()
    entry.enable()
    assert entry.is_enabled()
    assert VALUE_NAME not in reg.keys[APPROVED_KEY.lower()]


def test_unknown_platform_is_a_readable_error() -> None:
    with pytest.raises(AutostartError, match="not supported on plan9"):
        autostart_for("plan9", command=CMD)


# ── The launch command for each way of running ───────────────────────────────
def test_launch_command_frozen(tmp_path: Path) -> None:
    exe = tmp_path / "familylog-tray"
    exe.write_text("")
    cmd = launch_command(frozen=True, executable=str(exe), app_dir=tmp_path / "app")
    assert cmd == [str(exe.resolve()), "--autostart"]


def test_launch_command_checkout_uses_uv_run(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "familylog-tray"\n')
    (tmp_path / "app").mkdir()
    uv = tmp_path / "uv"
    uv.write_text("")
    cmd = launch_command(
        frozen=False,
        executable=sys.executable,
        app_dir=tmp_path / "app",
        which=lambda name: str(uv) if name == "uv" else None,
    )
    assert cmd == [str(uv), "run", "--project", str(tmp_path), "familylog-tray", "--autostart"]


def test_launch_command_installed_uses_console_script(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "site-packages" / "app"
    site.mkdir(parents=True)
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir()
    (bindir / "familylog-tray").write_text("")
    cmd = launch_command(
        frozen=False,
        executable=str(bindir / "python"),
        app_dir=site,
        which=lambda _: None,
        windows=False,
    )
    assert cmd == [str(bindir / "familylog-tray"), "--autostart"]
    (bindir / "familylog-tray").unlink()
    cmd = launch_command(
        frozen=False, executable=str(bindir / "python"), app_dir=site, which=lambda _: None
    )
    assert cmd == [str(bindir / "python"), "-m", "app.main", "--autostart"]


def test_this_checkout_is_recognised() -> None:
    import app

    assert is_checkout(Path(app.__file__).resolve().parent)
