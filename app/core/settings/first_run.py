"""When the app needs setting up, and what the set-up writes. Qt-free; the dialog uses it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings
from app.core.servers.binary import resolve_server_path
from app.core.settings.settings_file import update_settings_file
from app.paths import AppPaths

SETTINGS_HEADER = (
    "FamilyLog Tray settings, written by the first-run set-up.\n"
    "Every setting is described in the README; edit here or in the Settings window."
)


def _usable_file(path: str) -> bool:
    return bool(path) and Path(path).expanduser().is_file()


def first_run_reasons(settings: Settings, paths: AppPaths) -> list[str]:
    """Why the set-up dialog must open, one readable line each; empty when all is well."""
    reasons = []
    if not paths.settings_file.is_file():
        reasons.append(f"There is no settings file yet ({paths.settings_file}).")
    server = resolve_server_path(settings)
    if not Path(server).is_file():
        reasons.append(f"llama-server was not found at {server}.")
    elif not os.access(server, os.X_OK):
        reasons.append(f"{server} is not executable.")
    if not _usable_file(settings.VISION_MODEL_GGUF) and not _usable_file(settings.LLM_MODEL_GGUF):
        reasons.append("Neither the vision model nor the LLM model file exists.")
    return reasons


@dataclass
class FirstRunChoice:
    """What the user picked in the set-up dialog."""

    server_path: str = ""
    vision_model: str = ""
    vision_mmproj: str = ""
    llm_model: str = ""
    familylog_dir: str = ""
    imported: dict[str, str] = field(default_factory=dict)  # other keys from FamilyLog's .env

    def problems(self) -> list[str]:
        out = []
        if not _usable_file(self.server_path):
            out.append("Choose a llama-server binary.")
        if not self.vision_model and not self.llm_model:
            out.append("Choose at least one model (vision or LLM).")
        for label, value in (
            ("vision model", self.vision_model),
            ("mmproj", self.vision_mmproj),
            ("LLM model", self.llm_model),
        ):
            if value and not _usable_file(value):
                out.append(f"The {label} file {value} does not exist.")
        return out

    def updates(self) -> dict[str, str]:
        values = dict(self.imported)
        values.update(
            LLAMA_SERVER_PATH=self.server_path,
            VISION_MODEL_GGUF=self.vision_model,
            VISION_MMPROJ=self.vision_mmproj if self.vision_model else "",
            LLM_MODEL_GGUF=self.llm_model,
        )
        if self.familylog_dir:
            values["FAMILYLOG_DIR"] = self.familylog_dir
        return values


def write_first_run_settings(paths: AppPaths, choice: FirstRunChoice) -> Path:
    """Write the choice into the settings file, keeping whatever else it holds."""
    problems = choice.problems()
    if problems:
        raise ValueError(" ".join(problems))
    update_settings_file(paths.settings_file, choice.updates(), header=SETTINGS_HEADER)
    return paths.settings_file
