"""The real command line with odd settings files: FamilyLog's own keys in its ``.env`` never
stop the app, and a key set twice in ``settings.env`` is a warning naming both lines."""

from __future__ import annotations

import os
import subprocess
import sys

from app.paths import AppPaths


def test_familylogs_own_keys_do_not_stop_the_app_and_a_twice_set_key_is_named(
    app_home, tmp_path
) -> None:
    fl = tmp_path / "familylog"
    fl.mkdir()
    (fl / ".env").write_text("RUN_MODE=bogus\nTELEGRAM_TOKEN=x\n")
    paths = AppPaths.resolve().ensure()
    paths.settings_file.write_text(f"FAMILYLOG_DIR={fl}\nAPI_PORT=1\nAPI_PORT=2\n")
    done = subprocess.run(
        [sys.executable, "-m", "app.main", "--rescan"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 3, done.stderr  # no app runs on this home: said, not "bogus"
    assert "bogus" not in done.stderr and "not running" in done.stderr
    assert (
        f"warning: {paths.settings_file}: API_PORT is set on lines 2 and 3; line 3 wins"
        in done.stderr
    )
