"""The preset INI reader and editor: llama.cpp's grammar, and nothing it does not change lost."""

from __future__ import annotations

import pytest

from app.core.presets.ini import IniDocument, PresetSyntaxError

ROUTER_FILE = """\
version = 1

; (Optional) settings shared by every preset
[*]
c = 8192
n-gpu-layers = 8

# a model of llama.cpp's router, not one of ours
[ggml-org/MY-MODEL-GGUF:Q8_0]
chat-template = chatml
jinja = true ; a comment after a value
LLAMA_ARG_CACHE_RAM = 0

[qwen/qwen3-8b]
ctx-size = 16384   ; roomy
flash-attn = on

[custom_model]
model = /Users/abc/my-awesome-model-Q4_K_M.gguf
"""


def test_reads_llama_cpps_example_file() -> None:
    doc = IniDocument.parse(ROUTER_FILE)
    assert [e.key for e in doc.preamble()] == ["version"]
    assert doc.names() == ["*", "ggml-org/MY-MODEL-GGUF:Q8_0", "qwen/qwen3-8b", "custom_model"]
    qwen = doc.named("qwen/qwen3-8b")[0]
    assert [(e.key, e.value, e.line) for e in qwen.entries] == [
        ("ctx-size", "16384", 15),
        ("flash-attn", "on", 16),
    ]
    router = doc.named("ggml-org/MY-MODEL-GGUF:Q8_0")[0]
    assert router.get("jinja").value == "true"  # the comment and the blanks are not the value
    assert router.line == 9


def test_round_trip_is_byte_for_byte() -> None:
    assert IniDocument.parse(ROUTER_FILE).text() == ROUTER_FILE
    crlf = ROUTER_FILE.replace("\n", "\r\n")
    assert IniDocument.parse(crlf).text() == crlf


def test_editing_one_section_keeps_every_other_line() -> None:
    doc = IniDocument.parse(ROUTER_FILE)
    doc.set_section("qwen/qwen3-8b", {"ctx-size": "32768", "cache-type-k": "q8_0"})
    text = doc.text()
    # the edited line keeps its comment; the key not set any more is gone; the new one follows
    assert "ctx-size = 32768   ; roomy\ncache-type-k = q8_0\n" in text
    assert "flash-attn" not in text
    # everything outside the section is as it was
    before, _, after = ROUTER_FILE.partition("[qwen/qwen3-8b]")
    assert text.startswith(before)
    assert text.endswith("\n[custom_model]\nmodel = /Users/abc/my-awesome-model-Q4_K_M.gguf\n")
    assert after.split("[custom_model]")[1] in text


def test_a_new_section_goes_at_the_end() -> None:
    doc = IniDocument.parse(ROUTER_FILE)
    doc.set_section("local/tiny", {"ctx-size": "512", "pinned": "true"})
    assert doc.text() == ROUTER_FILE + "\n[local/tiny]\nctx-size = 512\npinned = true\n"


def test_other_spellings_are_rewritten_as_the_key() -> None:
    doc = IniDocument.parse("[m]\nc = 1\nno-mmap = true ; why\n")
    canon = {"c": "ctx-size", "no-mmap": "mmap"}.get
    doc.set_section("m", {"ctx-size": "2", "mmap": "false"}, canon=lambda k: canon(k) or k)
    assert doc.text() == "[m]\nctx-size = 2\nmmap = false ; why\n"


def test_removing_a_section_keeps_its_neighbours_and_comments() -> None:
    doc = IniDocument.parse(ROUTER_FILE)
    doc.remove_section("qwen/qwen3-8b")
    text = doc.text()
    assert "qwen" not in text and "roomy" not in text
    assert "\n\n\n" not in text
    assert text.endswith(
        "LLAMA_ARG_CACHE_RAM = 0\n\n[custom_model]\nmodel = /Users/abc/my-awesome-model-Q4_K_M.gguf\n"
    )
    doc.remove_section("custom_model")
    assert doc.text().endswith("LLAMA_ARG_CACHE_RAM = 0\n")


def test_a_section_given_twice_is_edited_once() -> None:
    # llama.cpp keeps only the last of two sections of one name
    doc = IniDocument.parse("[m]\nctx-size = 1\n\n[n]\nparallel = 2\n\n[m]\nmlock = true\n")
    assert [s.entries[0].key for s in doc.named("m")] == ["ctx-size", "mlock"]
    doc.set_section("m", {"mlock": "false"})
    assert doc.text() == "[n]\nparallel = 2\n\n[m]\nmlock = false\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[m]\nctx-size 8192\n", 2),
        ("[m\n", 1),
        ("version = 1\n\n[m]\nctx-size = 1\n9lives = 3\n", 5),
        ("[m]\nctx size = 1\n", 2),
    ],
)
def test_a_line_it_cannot_read_is_refused_with_its_number(text: str, line: int) -> None:
    with pytest.raises(PresetSyntaxError) as e:
        IniDocument.parse(text, "/home/me/models.ini")
    assert e.value.line == line
    assert f"/home/me/models.ini line {line}: cannot read" in str(e.value)


@pytest.mark.parametrize("value", ["a;b", "a#b", "two\nlines", " padded "])
def test_a_value_the_format_cannot_hold_is_not_written(value: str) -> None:
    doc = IniDocument.parse("")
    with pytest.raises(ValueError, match="cannot be written"):
        doc.set_section("m", {"alias": value})
    assert doc.text() == ""


def test_a_section_name_with_a_bracket_is_not_written() -> None:
    with pytest.raises(ValueError, match="section name"):
        IniDocument.parse("").set_section("a]b", {"ctx-size": "1"})
