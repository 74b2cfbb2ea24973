"""One model of the catalogue: a GGUF file (with its mmproj), its key, and its role if any."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.discovery.gguf_info import GGUFInfo

VISION = "vision"
LLM = "llm"
ROLE_TITLES = {VISION: "Vision", LLM: "LLM"}
ROLE_FILE_SETTING = {VISION: "VISION_MODEL_GGUF", LLM: "LLM_MODEL_GGUF"}
TYPE_FLAGS = {"embedding": ("--embeddings",), "reranker": ("--reranking",)}


@dataclass(frozen=True)
class ModelEntry:
    key: str  # what clients name it by (LM Studio's model key)
    path: str  # the GGUF file; "" for a role with no file set
    mmproj: str | None = None
    aliases: tuple[str, ...] = ()  # the key first, then the file stem and name
    role: str | None = None  # "vision" / "llm" for FamilyLog's two models
    port: int | None = None  # a role's configured port; other models get a free port
    type: str = "llm"  # "llm", "embedding" or "reranker"
    info: GGUFInfo | None = None
    quant: str | None = None
    load_at_start: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.path)

    @property
    def title(self) -> str:
        return ROLE_TITLES.get(self.role or "", "") or self.display_name

    @property
    def vision(self) -> bool:
        return bool(self.mmproj)

    @property
    def file(self) -> tuple[str, str | None]:
        """What makes two instances the same model: the file and its projector."""
        return (self.path, self.mmproj or None)

    @property
    def publisher(self) -> str:
        return self.key.split("/", 1)[0] if "/" in self.key else "local"

    @property
    def display_name(self) -> str:
        return (self.info.name if self.info else None) or Path(self.path).stem or self.key

    @property
    def size_bytes(self) -> int:
        total = self.info.size_bytes if self.info else 0
        if self.mmproj:
            try:
                total += Path(self.mmproj).stat().st_size
            except OSError:
                pass
        return total

    @property
    def max_context_length(self) -> int | None:
        return self.info.context_length if self.info else None

    @property
    def type_flags(self) -> tuple[str, ...]:
        return TYPE_FLAGS.get(self.type, ())

    def problem(self) -> str | None:
        """Why this model cannot be loaded, in words a person can act on; None if it can."""
        if not self.path:
            var = ROLE_FILE_SETTING.get(self.role or "", "the model file")
            return f"No model file set: choose one in Settings ({var})."
        if not Path(self.path).is_file():
            return f"Model file not found: {self.path}"
        if self.mmproj and not Path(self.mmproj).is_file():
            return f"mmproj file not found: {self.mmproj}"
        return None


def aliases_for(key: str, path: str) -> tuple[str, ...]:
    if not path:
        return (key,) if key else ()
    p = Path(path)
    return tuple(dict.fromkeys(a for a in (key, p.stem, p.name) if a))
