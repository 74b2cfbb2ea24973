"""When the app needs setting up, and what the set-up writes. Qt-free; the dialog uses it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from app.config import Settings
from app.core.discovery.server import resolve_server_path
from app.core.settings.settings_file import update_settings_file
from app.paths import AppPaths
from app.settings_load import settings_sources

if TYPE_CHECKING:
    from app.core.discovery.familylog_env import FamilyLogEnv
    from app.core.discovery.scan import FoundModel

PICKED_KEYS = {"LLAMA_SERVER_PATH", "VISION_MODEL_GGUF", "VISION_MMPROJ", "LLM_MODEL_GGUF"}

SETTINGS_HEADER = (
    "FamilyLog Tray settings, written by the first-run set-up.\n"
    "Every setting is described in the README; edit here or in the Settings window."
)


def _usable_file(path: str) -> bool:
    return bool(path) and Path(path).expanduser().is_file()


def first_run_reasons(settings: Settings, paths: AppPaths) -> list[str]:
    """Why the set-up dialog must open, one readable line each; empty when all is well.

    Only what the app cannot work without: a llama-server it can run and at least one of
    FamilyLog's model files. Where they come from does not matter (the environment,
    FamilyLog's ``.env`` or the settings file): with no settings file but a working set-up,
    the dialog is skipped and ``settings_origin`` says where they came from."""
    reasons = []
    server = resolve_server_path(settings)
    if not Path(server).is_file():
        reasons.append(f"llama-server was not found at {server}.")
    elif not os.access(server, os.X_OK):
        reasons.append(f"{server} is not executable.")
    if not _usable_file(settings.VISION_MODEL_GGUF) and not _usable_file(settings.LLM_MODEL_GGUF):
        reasons.append("Neither the vision model nor the LLM model file exists.")
    return reasons


SET_UP_KEYS = {
    "LLAMA_SERVER_PATH": "llama-server",
    "VISION_MODEL_GGUF": "the vision model",
    "LLM_MODEL_GGUF": "the LLM model",
}


def setting_origins(paths: AppPaths, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{key: where it is set}`` for the set-up keys: "the environment", or the file
    (the settings file, or FamilyLog's ``.env``) whose value wins; unset keys are left out."""
    env = os.environ if environ is None else environ
    files = settings_sources(paths, dict(env))
    values = [(str(f), dotenv_values(f)) for f in reversed(files)]  # the winner first
    out: dict[str, str] = {}
    for key in SET_UP_KEYS:
        if env.get(key):
            out[key] = "the environment"
            continue
        for name, found in values:
            if found.get(key):
                out[key] = name
                break
    return out


def settings_origin(
    settings: Settings, paths: AppPaths, environ: Mapping[str, str] | None = None
) -> str:
    """One sentence for a person: where the working set-up came from (when the set-up
    dialog was skipped because the environment or FamilyLog's ``.env`` had it all)."""
    origins = setting_origins(paths, environ)
    by_source: dict[str, list[str]] = {}
    for key, what in SET_UP_KEYS.items():
        if key == "LLAMA_SERVER_PATH":
            source = origins.get(key, "found on this computer")
            what = f"llama-server ({resolve_server_path(settings)})"
        elif _usable_file(getattr(settings, key)) and key in origins:
            source = origins[key]
        else:
            continue
        by_source.setdefault(source, []).append(what)
    parts = []
    for source, whats in by_source.items():
        joined = " and ".join(whats)
        if source == "found on this computer":
            parts.append(f"{joined}, {source}")
        elif source == "the environment":
            parts.append(f"{joined} from the environment")
        elif source == str(paths.settings_file):
            parts.append(f"{joined} from {source}")
        else:
            parts.append(f"{joined} from FamilyLog's .env ({source})")
    return (
        "Set-up skipped: the app uses " + "; ".join(parts) + ". "
        "Change them in Settings; that writes them to " + str(paths.settings_file) + "."
    )


@dataclass
class FirstRunChoice:
    """What the user picked in the set-up dialog."""

    server_path: str = ""
    vision_model: str = ""
    vision_mmproj: str = ""
    llm_model: str = ""
    familylog_dir: str = ""
    imported: dict[str, str] = field(default_factory=dict)  # other keys from FamilyLog's .env
    downloading: list[str] = field(default_factory=list)  # roles whose model is on its way

    def set_vision(self, model: FoundModel) -> None:
        self.vision_model = str(model.path)
        self.vision_mmproj = str(model.mmproj) if model.mmproj else ""

    def default_picks(self, models: Sequence[FoundModel]) -> None:
        """For a role not chosen yet: the first vision model, and the largest other one."""
        if not self.vision_model:
            vision = next((m for m in models if m.vision), None)
            if vision is not None:
                self.set_vision(vision)
        if not self.llm_model:
            others = [m for m in models if str(m.path) != self.vision_model and not m.vision]
            if others:
                self.llm_model = str(max(others, key=lambda m: m.info.n_params).path)

    def take_env(self, env: FamilyLogEnv) -> tuple[str, list[Path]]:
        """Take FamilyLog's .env: its binary and model paths that exist here become the
        picks, its other keys are kept to be written. Returns what to tell the user and the
        folders of its models (to look in)."""
        v = dict(env.values)
        missing = env.missing_files()
        missing_keys = {m.split("=", 1)[0] for m in missing}
        for key in PICKED_KEYS & set(v) - missing_keys:
            value = str(Path(v[key]).expanduser())
            if key == "LLAMA_SERVER_PATH":
                self.server_path = value
            elif key == "VISION_MODEL_GGUF":
                self.vision_model = value
            elif key == "VISION_MMPROJ":
                self.vision_mmproj = value
            else:
                self.llm_model = value
        self.imported = {k: val for k, val in v.items() if k not in PICKED_KEYS}
        self.familylog_dir = str(env.familylog_dir)
        text = (
            f"Imported {len(v)} setting(s) from {env.env_file}; FAMILYLOG_DIR={env.familylog_dir}."
        )
        if missing:
            text += " Not found here, pick these again: " + ", ".join(missing)
        folders = [
            Path(v[key]).expanduser().parent
            for key in ("VISION_MODEL_GGUF", "LLM_MODEL_GGUF")
            if key in v and key not in missing_keys
        ]
        return text, folders

    def problems(self) -> list[str]:
        out = []
        if not _usable_file(self.server_path):
            out.append("Choose a llama-server binary.")
        if not self.vision_model and not self.llm_model and not self.downloading:
            out.append("Choose at least one model (vision or LLM), or get one.")
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
