"""The benchmark's fixed prompt set: a short chat, a long prompt (~2,000 tokens), 256
generated tokens, and with a vision model one image. Sizes are parameters so tests can
shrink them for the tiny model's context; the long prompt can be shortened to fit a
model's context (``Prompt.shortened``)."""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Short common English words: one token each (with the leading space) in the usual BPE
# vocabularies, so N words make a prompt of about N tokens.
_TEXT = (
    "the day was long and the old man sat by the door to watch the rain fall on the road "
    "while his dog slept near the fire and the kids read a book in the back room of the "
    "house"
)
_WORDS = _TEXT.split()
RESOURCES = Path(__file__).resolve().parents[3] / "resources"


def long_text(tokens: int) -> str:
    """About ``tokens`` tokens of plain text (for most tokenizers)."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(max(1, tokens)))


@dataclass(frozen=True)
class Prompt:
    name: str  # "short chat", "long prompt", "generate", "image"
    messages: list[dict[str, Any]] = field(hash=False)
    max_tokens: int = 32
    # a prompt whose text can be shortened: its text's size in tokens, and how to build it
    # with fewer (the long prompt); None: it runs as it is or not at all
    text_tokens: int = 0
    build: Callable[[int], list[dict[str, Any]]] | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    def shortened(self, tokens: int) -> Prompt:
        """The same prompt with about ``tokens`` tokens of text."""
        assert self.build is not None
        return replace(self, messages=self.build(tokens), text_tokens=tokens)

    def body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "ignore_eos": True,  # llama-server: generate exactly max_tokens
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": False,  # every run evaluates its whole prompt
        }


@dataclass(frozen=True)
class PromptSizes:
    long_prompt_tokens: int = 2000
    generate_tokens: int = 256
    short_tokens: int = 32  # tokens answered to the short chat and the long prompt


def sample_image() -> Path:
    """The picture the image prompt sends to a vision model."""
    bundle = getattr(sys, "_MEIPASS", None)
    for root in ([Path(bundle) / "resources"] if bundle else []) + [RESOURCES]:
        path = root / "bench" / "sample.png"
        if path.is_file():
            return path
    raise FileNotFoundError("resources/bench/sample.png is missing")


def image_data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _summarise(tokens: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Summarise this text in one line:\n\n" + long_text(tokens)}]


def prompt_set(sizes: PromptSizes = PromptSizes(), *, image: Path | None = None) -> list[Prompt]:
    """The set, in the order it runs; with ``image`` (a vision model) one image prompt."""
    out = [
        Prompt(
            "short chat",
            [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hi! What is a good name for a cat?"},
            ],
            sizes.short_tokens,
        ),
        Prompt(
            "long prompt",
            _summarise(sizes.long_prompt_tokens),
            sizes.short_tokens,
            text_tokens=sizes.long_prompt_tokens,
            build=_summarise,
        ),
        Prompt(
            "generate",
            [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
            sizes.generate_tokens,
        ),
    ]
    if image is not None:
        out.append(
            Prompt(
                "image",
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Describe this picture."},
                            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                        ],
                    }
                ],
                sizes.short_tokens,
            )
        )
    return out
