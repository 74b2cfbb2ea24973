"""Whether a draft model can draft for a model: the vocabulary check llama.cpp makes when it
starts speculative decoding (``common_speculative_are_compatible``), made from the GGUF
headers before anything starts.

llama-server that finds the two vocabularies incompatible logs an error and serves without
the draft model, at the model's own speed; the app refuses such a pair instead, with the
reason. The rules are llama.cpp's: the same tokenizer type, the same ``add_bos``/``add_eos``
with the same BOS/EOS token where one is added, vocabulary sizes within 128 tokens, and the
same text for every token from id 5 up to the smaller size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from app.core.discovery.gguf_header import GgufReadError, read_header

MAX_SIZE_DIFFERENCE = 128  # llama.cpp's SPEC_VOCAB_MAX_SIZE_DIFFERENCE
CHECK_FROM_TOKEN = 5  # llama.cpp's SPEC_VOCAB_CHECK_START_TOKEN_ID
TOKENS = "tokenizer.ggml.tokens"


@dataclass(frozen=True)
class Vocab:
    path: str
    tokenizer: str | None  # tokenizer.ggml.model: "llama", "gpt2", "bert", ...
    tokens: tuple[str, ...]
    bos: int | None
    eos: int | None
    add_bos: bool | None
    add_eos: bool | None


def read_vocab(path: str | Path) -> Vocab:
    """The vocabulary of a GGUF (header only); ``GgufReadError`` or ``OSError``."""
    h = read_header(path, keep=(TOKENS,))

    def opt_int(key: str) -> int | None:
        v = h.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def opt_bool(key: str) -> bool | None:
        v = h.get(key)
        return v if isinstance(v, bool) else None

    tokens = h.get(TOKENS)
    return Vocab(
        path=str(path),
        tokenizer=h.get("tokenizer.ggml.model"),
        tokens=tuple(tokens) if isinstance(tokens, list) else (),
        bos=opt_int("tokenizer.ggml.bos_token_id"),
        eos=opt_int("tokenizer.ggml.eos_token_id"),
        add_bos=opt_bool("tokenizer.ggml.add_bos_token"),
        add_eos=opt_bool("tokenizer.ggml.add_eos_token"),
    )


def _special(what: str, add_t: bool | None, add_d: bool | None, id_t, id_d) -> str | None:
    if add_t is None or add_d is None:
        return None  # one header does not say: llama.cpp's default for the type applies
    if add_t != add_d:
        return f"one adds a {what} token to every prompt and the other does not"
    if add_t and id_t != id_d:
        return f"their {what} tokens differ (id {id_t} against {id_d})"
    return None


def vocab_mismatch(model: Vocab, draft: Vocab) -> str | None:
    """Why ``draft`` cannot draft for ``model``, in words; None when it can."""
    if not model.tokens or not draft.tokens:
        which = model if not model.tokens else draft
        return f"{Path(which.path).name} has no vocabulary in its header"
    if model.tokenizer != draft.tokenizer:
        return (
            f"their tokenizers differ ({model.tokenizer or 'none'} against "
            f"{draft.tokenizer or 'none'})"
        )
    for what, add_t, add_d, id_t, id_d in (
        ("BOS", model.add_bos, draft.add_bos, model.bos, draft.bos),
        ("EOS", model.add_eos, draft.add_eos, model.eos, draft.eos),
    ):
        found = _special(what, add_t, add_d, id_t, id_d)
        if found:
            return found
    n_t, n_d = len(model.tokens), len(draft.tokens)
    if abs(n_t - n_d) > MAX_SIZE_DIFFERENCE:
        return (
            f"their vocabularies differ in size ({n_t:,} tokens against {n_d:,}; at most "
            f"{MAX_SIZE_DIFFERENCE} apart)"
        )
    for i in range(CHECK_FROM_TOKEN, min(n_t, n_d)):
        if model.tokens[i] != draft.tokens[i]:
            return (
                f"token {i} differs ({model.tokens[i]!r} against {draft.tokens[i]!r}): "
                "they do not share a vocabulary"
            )
    return None


_Stamp = tuple[str, int, int]
_cache: dict[tuple[_Stamp, _Stamp], str | None] = {}
_lock = threading.Lock()


def _stamp(path: str | Path) -> _Stamp:
    st = Path(path).stat()
    return (str(path), st.st_mtime_ns, st.st_size)


def draft_problem(model_path: str | Path, draft_path: str | Path) -> str | None:
    """Why the GGUF at ``draft_path`` cannot draft for the one at ``model_path``: a sentence
    a person can act on; None when it can. Remembered per pair of file versions. Blocking
    (reads two headers, a vocabulary of 150 000 tokens in about 0.1 s): call it off the
    event loop."""
    draft_name = Path(draft_path).name
    if Path(draft_path).resolve() == Path(model_path).resolve():
        return f"{draft_name} is the model itself; choose a smaller model of the same family"
    try:
        key = (_stamp(model_path), _stamp(draft_path))
    except OSError as e:
        return f"the draft model file cannot be read: {e.strerror or e} ({draft_path})"
    with _lock:
        if key in _cache:
            return _cache[key]
    try:
        why = vocab_mismatch(read_vocab(model_path), read_vocab(draft_path))
    except (GgufReadError, OSError, ValueError) as e:
        why = f"cannot read the vocabularies: {e}"
    if why is not None:
        why = (
            f"{draft_name} cannot draft for {Path(model_path).name}: {why}. A draft model "
            "must use the same tokenizer, e.g. a smaller model of the same family"
        )
    with _lock:
        _cache[key] = why
    return why
