"""``familylog-tray --process-now`` with no instance running: one headless run, its output
printed, the run's exit code returned (for cron or a systemd timer)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.runs.conftest import standin_command


def process_now(env_extra: dict[str, str], app_home) -> subprocess.Popen:
    env = dict(os.environ, API_ENABLED="false", **env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "app.main", "--process-now"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("variant, code", [(("ok", "2"), 0), (("fail", "7"), 7)])
def test_process_now_without_an_instance(familylog_dir, app_home, variant, code) -> None:
    p = process_now(
        {"FAMILYLOG_DIR": str(familylog_dir), "FAMILYLOG_COMMAND": standin_command(*variant)},
        app_home,
    )
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "[standin]" in out
    if code == 0:
        assert "[standin] step 2/2" in out and "[standin] done" in out
    else:
        assert "failed on purpose" in out
        assert "FamilyLog run failed" in err and "Exit code 7" in err
    assert "Traceback (most recent call last):\n  File" not in err
    runs = json.loads((app_home / "state" / "runs.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["trigger"] == "command line"
    assert runs[0]["exit_code"] == code


def test_process_now_with_a_bad_folder(tmp_path, app_home) -> None:
    missing = tmp_path / "no-familylog"
    p = process_now({"FAMILYLOG_DIR": str(missing)}, app_home)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1
    assert f"FAMILYLOG_DIR {missing} does not exist" in err
    assert "run log:" in err


def test_ctrl_c_cancels_the_run(familylog_dir, app_home) -> None:
    p = process_now(
        {"FAMILYLOG_DIR": str(familylog_dir), "FAMILYLOG_COMMAND": standin_command("hang")},
        app_home,
    )
    try:
        while "hanging" not in (line := p.stdout.readline()):
            assert line, p.stderr.read()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "FamilyLog run cancelled" in err
