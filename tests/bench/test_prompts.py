"""The benchmark's prompt set (app/core/bench/prompts.py): sizes, the generation prompt's
settings, and the image prompt when an image is given."""

from __future__ import annotations

from pathlib import Path

from app.core.bench.prompts import PromptSizes, long_text, prompt_set


def test_prompt_set_sizes_and_image(tmp_path: Path) -> None:
    assert len(long_text(2000).split()) == 2000
    names = [p.name for p in prompt_set()]
    assert names == ["short chat", "long prompt", "generate"]
    gen = prompt_set()[2].body("m")
    assert gen["max_tokens"] == 256 and gen["ignore_eos"] is True and gen["stream"] is True
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG")
    image = prompt_set(PromptSizes(), image=png)[-1]
    assert image.name == "image"
    assert image.messages[0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
