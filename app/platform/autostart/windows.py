"""Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.

Task Manager's "Disable" does not delete the value; it writes a flag under
``...\\Explorer\\StartupApproved\\Run``. The state honours that flag, and enabling clears it.
"""

from __future__ import annotations

import subprocess
from typing import Any

from .base import APP_TITLE, AutostartError

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
VALUE_NAME = APP_TITLE


def _winreg() -> Any:
    try:
        import winreg  # type: ignore[import-not-found]
    except ImportError as e:  # pragma: no cover - only off Windows without injection
        raise AutostartError("The Windows registry is not available on this system.") from e
    return winreg


class WindowsRunKey:
    def __init__(self, command: list[str], registry: Any | None = None) -> None:
        self.command = command
        self.reg = registry if registry is not None else _winreg()

    @property
    def location(self) -> str:
        return rf"HKEY_CURRENT_USER\{RUN_KEY}\{VALUE_NAME}"

    def command_line(self) -> str:
        return subprocess.list2cmdline(self.command)

    def _query(self, sub_key: str) -> Any | None:
        reg = self.reg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, sub_key, 0, reg.KEY_READ) as key:
                return reg.QueryValueEx(key, VALUE_NAME)[0]
        except FileNotFoundError:
            return None

    def _delete(self, sub_key: str) -> bool:
        reg = self.reg
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, sub_key, 0, reg.KEY_SET_VALUE) as key:
                reg.DeleteValue(key, VALUE_NAME)
        except FileNotFoundError:
            return False
        return True

    def _disabled_in_task_manager(self) -> bool:
        flag = self._query(APPROVED_KEY)
        # The first byte is 2 (or 6) when approved and 3 (or 7) when the user disabled it.
        return isinstance(flag, bytes | bytearray) and len(flag) > 0 and flag[0] & 1 == 1

    def enable(self) -> None:
        reg = self.reg
        try:
            with reg.CreateKeyEx(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
                reg.SetValueEx(key, VALUE_NAME, 0, reg.REG_SZ, self.command_line())
            if self._disabled_in_task_manager():
                self._delete(APPROVED_KEY)
        except OSError as e:
            raise AutostartError(f"Cannot write the registry value {self.location}: {e}.") from e

    def disable(self) -> bool:
        try:
            removed = self._delete(RUN_KEY)
            self._delete(APPROVED_KEY)
        except OSError as e:
            raise AutostartError(f"Cannot remove the registry value {self.location}: {e}.") from e
        return removed

    def is_enabled(self) -> bool:
        try:
            value = self._query(RUN_KEY)
            return bool(value) and not self._disabled_in_task_manager()
        except OSError:
            return False
