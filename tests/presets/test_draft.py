"""A draft model is checked against the model before anything starts: llama.cpp's vocabulary
rules, read from the GGUF headers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.core.presets.draft import draft_problem, read_vocab, vocab_mismatch
from tests.support.tiny_model import write_tiny_bert, write_tiny_model, write_vocab_only


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("draft")
    return {
        "model": write_tiny_model(d / "model.gguf"),
        "same": write_tiny_model(d / "draft.gguf", seed=1, name="tiny-draft"),
        "fim": write_tiny_model(d / "fim.gguf", seed=2, fim=True),
        "bert": write_tiny_bert(d / "bert.gguf"),
    }


def test_a_draft_with_the_same_vocabulary_is_accepted(files: dict[str, Path]) -> None:
    assert draft_problem(files["model"], files["same"]) is None


def test_a_draft_whose_tokens_differ_is_refused(files: dict[str, Path]) -> None:
    why = draft_problem(files["model"], files["fim"])
    assert why is not None
    assert why.startswith("fim.gguf cannot draft for model.gguf: token 98 differs")
    assert "same tokenizer" in why


def test_a_draft_with_another_tokenizer_is_refused(files: dict[str, Path]) -> None:
    why = draft_problem(files["model"], files["bert"])
    assert why is not None and "their tokenizers differ (gpt2 against bert)" in why


def test_the_model_itself_is_no_draft(files: dict[str, Path]) -> None:
    why = draft_problem(files["model"], files["model"])
    assert why is not None and "is the model itself" in why


def test_a_missing_draft_file(files: dict[str, Path], tmp_path: Path) -> None:
    why = draft_problem(files["model"], tmp_path / "gone.gguf")
    assert why is not None and "cannot be read" in why and "gone.gguf" in why


def vocab(tmp_path: Path, name: str, tokens: list[str], **kw) -> Path:
    return write_vocab_only(tmp_path / f"{name}.gguf", tokens, **kw)


def test_sizes_within_128_tokens_pass_and_further_apart_do_not(tmp_path: Path) -> None:
    base = [f"t{i}" for i in range(1000)]
    big = vocab(tmp_path, "big", base + [f"extra{i}" for i in range(128)])
    bigger = vocab(tmp_path, "bigger", base + [f"extra{i}" for i in range(129)])
    model = vocab(tmp_path, "model", base)
    assert vocab_mismatch(read_vocab(model), read_vocab(big)) is None
    assert vocab_mismatch(read_vocab(model), read_vocab(bigger)) == (
        "their vocabularies differ in size (1,000 tokens against 1,129; at most 128 apart)"
    )


def test_the_first_five_tokens_may_differ(tmp_path: Path) -> None:
    base = [f"t{i}" for i in range(50)]
    other = ["<pad>", "<s>", "</s>", "<unk>", "<mask>", *base[5:]]
    assert (
        vocab_mismatch(
            read_vocab(vocab(tmp_path, "a", base)), read_vocab(vocab(tmp_path, "b", other))
        )
        is None
    )


def test_bos_and_eos_must_agree_where_they_are_added(tmp_path: Path) -> None:
    tokens = [f"t{i}" for i in range(50)]
    model = read_vocab(vocab(tmp_path, "m", tokens, bos=1, add_bos=True))
    assert vocab_mismatch(
        model, read_vocab(vocab(tmp_path, "d1", tokens, bos=2, add_bos=True))
    ) == ("their BOS tokens differ (id 1 against 2)")
    assert vocab_mismatch(
        model, read_vocab(vocab(tmp_path, "d2", tokens, bos=1, add_bos=False))
    ) == ("one adds a BOS token to every prompt and the other does not")
    assert (
        vocab_mismatch(model, read_vocab(vocab(tmp_path, "d3", tokens, bos=1, add_bos=True)))
        is None
    )


def test_a_real_size_vocabulary_is_read_whole(tmp_path: Path) -> None:
    # 152 064 tokens, as Qwen's: the check runs before a load, off the event loop
    tokens = [f"\u0120tok{i:06d}" for i in range(152_064)]
    model = vocab(tmp_path, "qwen-like", tokens)
    draft = vocab(tmp_path, "qwen-like-small", tokens[:-64])
    started = time.perf_counter()
    assert draft_problem(model, draft) is None
    took = time.perf_counter() - started
    # no wall-clock assertion (GUIDE); the figure is printed for the record
    print(f"vocabulary check of two 152k-token headers: {took * 1000:.0f} ms")
    assert read_vocab(model).tokens[-1] == tokens[-1]
