"""Which kind of model (chat, embedding, reranker) serves which route: a clear 400 for a
request sent to a model of the wrong kind."""

from __future__ import annotations

from app.core.api.common import ApiError
from app.core.models.entry import ModelEntry

# What each kind of model serves (llama-server started with --embeddings or --reranking
# still answers chats, with nonsense: refused here).
CHAT_PATHS = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/responses",
        "/infill",
        "/api/v0/chat/completions",
        "/api/v0/completions",
        "/api/v1/chat",
    }
)
EMBED_PATHS = frozenset({"/v1/embeddings", "/api/v0/embeddings"})
RERANK_PATHS = frozenset({"/v1/rerank", "/rerank"})
_SERVES = {"llm": "chats and completions", "embedding": "embeddings", "reranker": "reranking"}
_USE = {"llm": "/v1/chat/completions", "embedding": "/v1/embeddings", "reranker": "/v1/rerank"}


def serves(entry: ModelEntry, path: str) -> bool:
    """Whether a model of ``entry``'s type can answer ``path``."""
    kind = entry.type if entry.type in _SERVES else "llm"
    return (
        (kind == "llm" and path not in EMBED_PATHS | RERANK_PATHS)
        or (kind == "embedding" and path in EMBED_PATHS)
        or (kind == "reranker" and path in RERANK_PATHS)
        or path in ("/tokenize", "/detokenize")  # every model has a tokenizer
    )


def check_kind(entry: ModelEntry, path: str) -> None:
    """A 400 when ``entry``'s type cannot serve ``path``."""
    kind = entry.type if entry.type in _SERVES else "llm"
    if not serves(entry, path):
        raise ApiError(
            400,
            f"{entry.key} is a{'n' if kind[0] in 'ae' else ''} {kind} model: it serves "
            f"{_SERVES[kind]} ({_USE[kind]}), not {path}. Choose a model of the right type.",
            code="model_type_mismatch",
            param="model",
        )
