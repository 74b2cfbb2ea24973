"""A stand-in for ``winreg`` (which exists only on Windows) with the same calls and errors.

It models what the app uses: keys under HKEY_CURRENT_USER holding named values, opened with
``OpenKey`` (FileNotFoundError when the key is missing), created with ``CreateKeyEx``,
``QueryValueEx`` / ``DeleteValue`` raising FileNotFoundError for a missing value, and
handles usable as context managers, like ``winreg.HKEYType``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Handle:
    sub_key: str
    access: int
    closed: bool = False

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True


@dataclass
class FakeWinreg:
    HKEY_CURRENT_USER: int = 0x80000001
    KEY_READ: int = 0x20019
    KEY_SET_VALUE: int = 0x0002
    KEY_WRITE: int = 0x20006
    REG_SZ: int = 1
    REG_BINARY: int = 3
    keys: dict[str, dict[str, tuple[object, int]]] = field(default_factory=dict)
    opened: list[_Handle] = field(default_factory=list)

    def _norm(self, root: int, sub_key: str) -> str:
        assert root == self.HKEY_CURRENT_USER, "the app must only touch HKEY_CURRENT_USER"
        return sub_key.lower()

    def OpenKey(self, root: int, sub_key: str, reserved: int = 0, access: int = 0x20019):
        k = self._norm(root, sub_key)
        if k not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        h = _Handle(k, access)
        self.opened.append(h)
        return h

    def CreateKeyEx(self, root: int, sub_key: str, reserved: int = 0, access: int = 0x20006):
        k = self._norm(root, sub_key)
        self.keys.setdefault(k, {})
        h = _Handle(k, access)
        self.opened.append(h)
        return h

    def QueryValueEx(self, key: _Handle, name: str):
        assert key.access & self.KEY_READ == self.KEY_READ, "opened without read access"
        try:
            return self.keys[key.sub_key][name]
        except KeyError:
            raise FileNotFoundError(2, "The system cannot find the file specified") from None

    def SetValueEx(self, key: _Handle, name: str, reserved: int, type_: int, value) -> None:
        assert key.access & self.KEY_SET_VALUE, "opened without write access"
        self.keys[key.sub_key][name] = (value, type_)

    def DeleteValue(self, key: _Handle, name: str) -> None:
        assert key.access & self.KEY_SET_VALUE, "opened without write access"
        try:
            del self.keys[key.sub_key][name]
        except KeyError:
            raise FileNotFoundError(2, "The system cannot find the file specified") from None
