"""Which model an SDK call is for (a model specifier: a query by identifier, key, path, or an
instance reference), and using it through the lifecycle like the REST API does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from app.core.api.lmstudio_ws.errors import SdkError, no_model
from app.core.api.lmstudio_ws.info import domain_of, instance_ref
from app.core.api.lmstudio_ws.state import Session
from app.core.lifecycle.instance import Instance, LoadFailedError, ModelNotLoadedError
from app.core.models.entry import ModelEntry

_WHAT = {"llm": "LLM", "embedding": "embedding model"}


def find(s: Session, name: str) -> ModelEntry | None:
    """A catalogue model by an instance name a client chose, its key or alias, or its file."""
    cat = s.c.catalogue
    key = s.state.key_named(name)
    return cat.find(key or name) or cat.by_file(name)


def check_domain(s: Session, entry: ModelEntry) -> ModelEntry:
    """``entry`` if this namespace serves it; otherwise say where it belongs."""
    if entry.type == "reranker":
        raise SdkError(
            f"{entry.key} is a reranker: LM Studio's SDKs have no reranking",
            suggestion=f'Use POST /v1/rerank with {{"model": "{entry.key}"}}.',
        )
    if domain_of(entry) != s.namespace:
        other = domain_of(entry)
        raise SdkError(
            f"{entry.key} is an {_WHAT[other]}, not an {_WHAT[s.namespace]}",
            suggestion=f"Use client.{other}.model({entry.key!r}).",
        )
    return entry


def loaded(s: Session) -> list[Instance]:
    return [
        i
        for i in s.c.lifecycle.loaded()
        if i.entry is not None and i.entry.type != "reranker" and domain_of(i.entry) == s.namespace
    ]


def loaded_names(s: Session) -> list[str]:
    return [s.state.name_of(i.key) for i in loaded(s)]


def missing(s: Session, query: str) -> SdkError:
    known = [e.key for e in s.c.catalogue.entries() if domain_of(e) == s.namespace]
    return no_model(query, _WHAT[s.namespace], loaded_names(s), known)


def entry_named(s: Session, name: Any) -> ModelEntry:
    """The model a key (or name, alias, path) stands for, in this namespace."""
    if not isinstance(name, str) or not name:
        raise SdkError(f"A model key must be a non-empty string, not {name!r:.100}")
    entry = find(s, name)
    if entry is None:
        raise missing(s, name)
    return check_domain(s, entry)


def resolve(s: Session, spec: Any) -> ModelEntry:
    """The model a specifier names; a query without identifier or path: a loaded one."""
    if not isinstance(spec, dict):
        raise SdkError(f"A model specifier must be an object, not {spec!r:.100}")
    if spec.get("type") == "instanceReference":
        ref = spec.get("instanceReference")
        for inst in loaded(s):
            if instance_ref(inst) == ref:
                assert inst.entry is not None
                return inst.entry
        raise missing(s, str(ref))
    query = spec.get("query") if spec.get("type") == "query" else None
    if not isinstance(query, dict):
        raise SdkError(
            'A model specifier is {"type": "query", "query": {...}} or '
            f'{{"type": "instanceReference", ...}}, not {spec!r:.200}'
        )
    name = query.get("identifier") or query.get("path")
    if name is None:
        found = loaded(s)
        if query.get("vision") is not None:
            found = [i for i in found if i.entry and i.entry.vision == query["vision"]]
        if not found:
            raise missing(s, "any loaded model")
        assert found[0].entry is not None
        return found[0].entry
    return entry_named(s, name)


def loaded_instance(s: Session, entry: ModelEntry) -> Instance | None:
    return s.c.lifecycle.ready(entry)


@contextlib.asynccontextmanager
async def using(s: Session, entry: ModelEntry) -> AsyncIterator[Instance]:
    """Hold the model's instance for one request (JIT-loading it as the REST API does)."""
    try:
        async with s.c.lifecycle.holding(entry, jit=s.c.settings().JIT_LOAD) as inst:
            yield inst
    except ModelNotLoadedError as e:
        raise SdkError(
            f"{entry.key} is not loaded",
            cause=str(e),
            suggestion=f"Load it first: client.{s.namespace}.model({entry.key!r}).",
        ) from None
    except LoadFailedError as e:
        raise load_failed(s, entry, e) from None


def load_failed(s: Session, entry: ModelEntry, e: LoadFailedError) -> SdkError:
    st = s.c.lifecycle.instance(entry)
    where = f" Read {s.c.log_path(st.port)}." if st is not None else ""
    return SdkError(
        f"Could not load {entry.key}",
        cause=str(e),
        suggestion="See the app's notification and log (Show logs… in the tray)." + where,
    )
