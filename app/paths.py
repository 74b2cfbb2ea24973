"""Where every file the app owns lives: one app home, resolved at run time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "familylog-tray"
HOME_ENV = "FAMILYLOG_TRAY_HOME"


@dataclass(frozen=True)
class AppPaths:
    """The folders the app writes to. Nothing is created until ``ensure()`` is called."""

    config_dir: Path
    log_dir: Path
    state_dir: Path

    @classmethod
    def resolve(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> AppPaths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV)
        if home:
            root = Path(home).expanduser().resolve()
            return cls(config_dir=root, log_dir=root / "logs", state_dir=root / "state")
        dirs = PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            log_dir=Path(dirs.user_log_dir),
            state_dir=Path(dirs.user_state_dir),
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.env"

    @property
    def presets_file(self) -> Path:
        """Each model's own settings, in llama.cpp's preset format (``models.ini``)."""
        return self.config_dir / "models.ini"

    @property
    def app_log_file(self) -> Path:
        return self.log_dir / "familylog-tray.log"

    @property
    def runs_dir(self) -> Path:
        return self.log_dir / "runs"

    @property
    def ownership_file(self) -> Path:
        return self.state_dir / "servers.json"

    @property
    def downloads_file(self) -> Path:
        """The download jobs, kept so an interrupted download resumes at the next start."""
        return self.state_dir / "downloads.json"

    @property
    def history_file(self) -> Path:
        return self.state_dir / "runs.json"

    @property
    def bench_dir(self) -> Path:
        """Benchmark runs: ``benchmark-<time>.json``, ``.csv`` and the chart ``.png``."""
        return self.state_dir / "benchmarks"

    @property
    def slot_cache_dir(self) -> Path:
        """Saved slot contexts (llama-server's ``--slot-save-path``) and their index."""
        return self.state_dir / "slots"

    def server_log(self, port: int) -> Path:
        return self.log_dir / f"llama-server-{port}.log"

    def ensure(self) -> AppPaths:
        """Create the folders, with a message a person can act on if that fails."""
        for d in (self.config_dir, self.log_dir, self.state_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise AppHomeError(
                    f"Cannot create the app folder {d}: {e.strerror or e}. "
                    f"Make it writable or set {HOME_ENV} to a writable folder."
                ) from e
            if not os.access(d, os.W_OK):
                raise AppHomeError(
                    f"The app folder {d} is not writable. "
                    f"Fix its permissions or set {HOME_ENV} to a writable folder."
                )
        return self


class AppHomeError(RuntimeError):
    """The app home cannot be created or written."""
