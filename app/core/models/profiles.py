"""Model profiles: the vision and LLM models the settings describe, and where they run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.config import Settings

VISION = "vision"
LLM = "llm"


@dataclass(frozen=True)
class ModelProfile:
    name: str  # "vision" or "llm"
    title: str  # "Vision", "LLM"
    model_path: str
    mmproj: str | None
    port: int  # its own port in the parallel layout (approach B)
    model_id: str  # the LM Studio key FamilyLog uses
    load_at_start: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.model_path)

    def problem(self) -> str | None:
        """Why this profile cannot be loaded, in words a person can act on; None if it can."""
        if not self.model_path:
            var = "VISION_MODEL_GGUF" if self.name == VISION else "LLM_MODEL_GGUF"
            return f"No model file set: choose one in Settings ({var})."
        if not Path(self.model_path).is_file():
            return f"Model file not found: {self.model_path}"
        if self.mmproj and not Path(self.mmproj).is_file():
            return f"mmproj file not found: {self.mmproj}"
        return None

    @property
    def aliases(self) -> tuple[str, ...]:
        if not self.model_path:
            return ()
        p = Path(self.model_path)
        return tuple(dict.fromkeys(a for a in (self.model_id, p.stem, p.name) if a))


def profiles_from_settings(s: Settings) -> dict[str, ModelProfile]:
    def key(explicit: str, path: str) -> str:
        return explicit or (Path(path).stem if path else "")

    return {
        VISION: ModelProfile(
            name=VISION,
            title="Vision",
            model_path=s.VISION_MODEL_GGUF,
            mmproj=s.VISION_MMPROJ or None,
            port=s.LLAMA_VISION_PORT,
            model_id=key(s.VISION_MODEL_ID, s.VISION_MODEL_GGUF),
            load_at_start=s.VISION_LOAD_AT_START,
        ),
        LLM: ModelProfile(
            name=LLM,
            title="LLM",
            model_path=s.LLM_MODEL_GGUF,
            mmproj=None,
            port=s.LLAMA_LLM_PORT,
            model_id=key(s.LLM_MODEL_ID, s.LLM_MODEL_GGUF),
            load_at_start=s.LLM_LOAD_AT_START,
        ),
    }
