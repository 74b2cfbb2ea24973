"""Errors in the SDK's own shape (``SerializedLMSExtendedError``: title, cause, suggestion),
and what the app answers for the parts of LM Studio it does not serve."""

from __future__ import annotations

from typing import Any

from app.core.api.common import ApiError, clip, shown

NO_MODEL = "generic.noModelMatchingQuery"  # the SDKs raise their "model not found" error


class SdkError(Exception):
    """An answer the SDK prints as ``title``, then the cause and the suggested remedy."""

    def __init__(
        self,
        title: str,
        *,
        cause: str | None = None,
        suggestion: str | None = None,
        display: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(title)
        self.title = title
        self.cause = cause
        self.suggestion = suggestion
        self.display = display

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "rootTitle": self.title}
        if self.cause:
            out["cause"] = self.cause
        if self.suggestion:
            out["suggestion"] = self.suggestion
        if self.display:
            out["displayData"] = self.display
        return out

    @classmethod
    def from_api(cls, e: ApiError) -> SdkError:
        """The REST API's refusal (the same check, the same words) in the SDK's shape."""
        return cls(e.message)


def no_model(query: str, what: str, loaded: list[str], known: list[str]) -> SdkError:
    """No model answers ``query``: say what is loaded and what could be loaded."""
    cause = f"Loaded {what}: {', '.join(loaded) or 'none'}."
    if known:
        names = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        cause += f" Models that can be loaded: {names}."
    return SdkError(
        f"No {what} matches {shown(query)}",
        cause=cause,
        suggestion="Use a key from client.list_downloaded_models() (or GET /api/v1/models).",
        display={
            "code": NO_MODEL,
            "query": {"identifier": clip(query)},
            "loadedModelsSample": loaded[:10],
            "totalLoadedModels": len(loaded),
        },
    )


# What a program can use instead, for each part of LM Studio the app does not serve.
INSTEAD = {
    "files": (
        "uploading files (prepare_image, documents)",
        "Send images to a vision model through the OpenAI-compatible API: POST "
        "/v1/chat/completions with an image_url content part (a data: URL).",
    ),
    "repository": (
        "searching and downloading models through the SDK",
        "Get models with the app: 'Get models…' in the tray, familylog-tray --download "
        "<repo>, or POST /api/v1/models/download; or put GGUF files in a folder of "
        "MODEL_DIRS (LM Studio's models folder is one by default).",
    ),
    "plugins": (
        "LM Studio plugins",
        "Give tools to .act() or to respond(config={'rawTools': ...}) instead: the app passes "
        "tool definitions to llama-server.",
    ),
    "diagnostics": (
        "LM Studio's log streaming",
        "Read the app's logs: 'Show logs…' in the tray, or familylog-tray --logs.",
    ),
    "runtime": (
        "choosing LM Studio runtimes",
        "The app runs llama.cpp's llama-server: set LLAMA_SERVER_PATH in Settings.",
    ),
    "retrieval": (
        "retrieval over files",
        "Embed with client.embedding.model(key).embed() and search the vectors yourself.",
    ),
}

# Endpoints of the served namespaces that the app answers with a refusal, and why.
UNSERVED_ENDPOINTS = {
    "notify": "LM Studio's notifications are not shown by the app.",
    "startHttpServer": "The API runs while the app runs (API_PORT in Settings).",
    "stopHttpServer": "The API runs while the app runs; quit the app from the tray to stop it.",
    "requestShutdown": "Quit the app from the tray (or stop familylog-tray --headless).",
    "setExperimentFlag": "The app has no LM Studio experiment flags.",
    "getExperimentFlags": "The app has no LM Studio experiment flags.",
    "preloadDraftModel": "Speculative decoding is not set up through the SDK here.",
    "estimateModelUsage": "Ask GET /api/v1/models for sizes; placement estimates on its own.",
    "getInstanceProcessingState": "Ask GET /api/v0/ps for what each model is doing.",
    "downloadModel": INSTEAD["repository"][1],
    "searchModels": INSTEAD["repository"][1],
    "getModelDownloadOptions": INSTEAD["repository"][1],
}


def not_served(namespace: str, kind: str, endpoint: str) -> SdkError:
    """The refusal for ``endpoint`` of ``namespace`` (an rpc, a channel or a signal)."""
    if namespace in INSTEAD:
        what, instead = INSTEAD[namespace]
        return SdkError(
            f"FamilyLog Tray does not serve {what} (LM Studio's '{namespace}' {kind} '{endpoint}')",
            cause="FamilyLog Tray serves LM Studio's API for local llama.cpp models: the "
            "system, llm and embedding namespaces.",
            suggestion=instead,
        )
    why = UNSERVED_ENDPOINTS.get(endpoint)
    return SdkError(
        f"FamilyLog Tray does not serve the '{namespace}' {kind} '{endpoint}'",
        cause=why
        or "It serves what a program needs to list, load, unload, predict, embed and "
        "tokenize; this endpoint is not among them.",
        suggestion=None
        if why
        else "Use the REST API (GET /api/v1/models, POST /api/v1/chat) or the "
        "OpenAI-compatible one (/v1/...) for anything else.",
    )
