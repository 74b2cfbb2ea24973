"""The app's windows, one of each: each is made the first time it is asked for, filled
again when shown, and brought to the front."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import shiboken6
from PySide6.QtWidgets import QWidget

from app.config import Settings
from app.core.app_core import AppCore
from app.paths import AppPaths
from app.ui.benchmark_window import BenchmarkWindow
from app.ui.check_window import CheckWindow
from app.ui.downloads_window import GetModelsWindow
from app.ui.models_window import ModelsHost, ModelsWindow
from app.ui.preset_dialog import PresetDialog
from app.ui.settings_dialog import SettingsDialog


def to_front(window: QWidget) -> None:
    """Show ``window`` above the others, with the focus."""
    window.show()
    window.raise_()
    window.activateWindow()


class Windows:
    """The models, check, benchmark, Get models… and Settings… windows and the per-model
    Settings… dialogs of one app."""

    def __init__(
        self,
        host: ModelsHost,
        core: AppCore,
        paths: AppPaths,
        *,
        apply_settings: Callable[[Settings], Awaitable[list[str]]],
        preset_saved: Callable[[str], list[str]],
    ) -> None:
        """``apply_settings(new)``: Settings… saved ``new``; ``preset_saved(key)``: a model's
        Settings… saved; both return what the dialog says after Save."""
        self._host = host
        self._core = core
        self._paths = paths
        self._apply_settings = apply_settings
        self._preset_saved = preset_saved
        self.models: ModelsWindow | None = None
        self.benchmark: BenchmarkWindow | None = None
        self.get_models: GetModelsWindow | None = None
        self.check: CheckWindow | None = None
        self.settings: SettingsDialog | None = None
        self.presets: dict[str, PresetDialog] = {}  # a model's Settings…, by key

    def show_models(self) -> None:
        if self.models is None:
            self.models = ModelsWindow(self._host)
            if self._host.gpu_snapshot is not None:
                self.models.on_snapshot(self._host.gpu_snapshot)
        to_front(self.models)

    def show_check(self) -> None:
        """The Check models window (each model and FamilyLog's pair, through the app's API)."""
        if self.check is None:
            self.check = CheckWindow.of(self._core, self._paths)
        self.check.fill_models()
        to_front(self.check)

    def show_benchmark(self) -> None:
        """The Benchmark window (the prompt set against the app's API, and another server)."""
        if self.benchmark is None:
            self.benchmark = BenchmarkWindow(self._core, self._paths)
        self.benchmark.fill_models()
        to_front(self.benchmark)

    def show_get_models(self) -> None:
        """The Get models… window (search the Hugging Face Hub, fit, download, the queue)."""
        if self._core.downloads is None:
            return
        if self.get_models is None:
            self.get_models = GetModelsWindow(self._core.downloads)
        to_front(self.get_models)

    def show_settings(self) -> None:
        if self.settings is None:
            self.settings = SettingsDialog(self._core.settings, self._paths, self._apply_settings)
        else:
            self.settings.settings = self._core.settings
            self.settings.load_values(self._core.settings)
        to_front(self.settings)

    def model_settings(self, key: str) -> None:
        """A model's Settings… (its own section of models.ini), one window per model."""
        entry = self._core.catalogue.resolve(key)
        dlg = self.presets.get(key)
        if dlg is None or not shiboken6.isValid(dlg):
            title = entry.title if entry.title == entry.key else f"{entry.title} ({entry.key})"
            dlg = PresetDialog(
                self._core.presets, entry, title, on_saved=lambda: self._preset_saved(key)
            )
            self.presets[key] = dlg
        to_front(dlg)

    def close(self) -> None:
        """Close every window that is open."""
        windows = (self.models, self.settings, self.benchmark, self.get_models, self.check)
        for w in (*windows, *self.presets.values()):
            if w is not None and shiboken6.isValid(w):
                w.close()
