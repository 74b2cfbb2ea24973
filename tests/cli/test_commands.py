"""Which launches open the tray: every command that answers and exits must not (a new
command missing from ``opens_the_tray`` would start a second tray and never return)."""

from __future__ import annotations

import argparse

import pytest

from app.main import build_parser, opens_the_tray, parse_args

TRAY_FLAGS = {"--show", "--logs", "--autostart"}  # what the tray itself does


def _commands() -> list[str]:
    """Every flag that is a command on its own (a switch that parses without another)."""
    out = []
    for action in build_parser()._actions:
        if not isinstance(action, argparse._StoreTrueAction):
            continue
        out += [o for o in action.option_strings if o.startswith("--") and o not in TRAY_FLAGS]
    return out


def test_the_commands_are_found() -> None:
    assert {"--rescan", "--ps", "--headless", "--process-now", "--rpc-worker"} <= set(_commands())


@pytest.mark.parametrize("flag", _commands())
def test_a_command_does_not_open_the_tray(flag: str) -> None:
    assert not opens_the_tray(parse_args([flag]))


@pytest.mark.parametrize("argv", [[], ["--show"], ["--logs"], ["--autostart"]])
def test_the_tray_launches_open_it(argv: list[str]) -> None:
    assert opens_the_tray(parse_args(argv))
