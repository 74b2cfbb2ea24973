"""models.ini as the app keeps it: checked with the line of each problem, edited without
losing what the app does not understand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.models.entry import ModelEntry, aliases_for
from app.core.presets.fields import ModelPreset
from app.core.presets.store import PresetError, PresetStore
from app.paths import AppPaths

QWEN = ModelEntry(
    key="qwen/qwen3-8b",
    path="/m/Qwen3-8B-Q4_K_M.gguf",
    aliases=aliases_for("qwen/qwen3-8b", "/m/Qwen3-8B-Q4_K_M.gguf"),
)
OTHER = ModelEntry(key="local/other", path="/m/other.gguf", aliases=("local/other",))

HAND_WRITTEN = """\
version = 1
; my models

[*]
parallel = 2

[qwen/qwen3-8b]
ctx-size = 16384 ; the 8B gets room
ngl = 20
no-mmap = true

[ggml-org/gemma-3-4b-it-GGUF:Q4_K_M]
hf-repo = ggml-org/gemma-3-4b-it-GGUF
chat-template-kwargs = {"enable_thinking": false}
"""


@pytest.fixture
def store(app_home: Path) -> PresetStore:
    return PresetStore(AppPaths.resolve().presets_file)


def write(store: PresetStore, text: str) -> None:
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(text, encoding="utf-8")


def test_the_file_lives_in_the_app_home(app_home: Path, store: PresetStore) -> None:
    assert store.path == app_home / "models.ini"


def test_a_models_section_over_the_global_one(store: PresetStore) -> None:
    write(store, HAND_WRITTEN)
    own = store.own(QWEN)
    assert own.set_fields() == {"ctx_size": 16384, "n_gpu_layers": 20, "mmap": False}
    eff = store.effective(QWEN)
    assert (eff.ctx_size, eff.n_gpu_layers, eff.mmap, eff.parallel) == (16384, 20, False, 2)
    assert store.has_own(QWEN) and not store.has_own(OTHER)
    # a model without a section gets [*] only; the app's settings fill in the rest
    assert store.effective(OTHER).set_fields() == {"parallel": 2}


def test_a_section_may_be_named_by_another_name_of_the_model(store: PresetStore) -> None:
    # llama.cpp's router names a model by its file; the catalogue knows that name too
    write(store, "[Qwen3-8B-Q4_K_M]\nctx-size = 4096\n")
    assert store.section_name(QWEN) == "Qwen3-8B-Q4_K_M"
    assert store.effective(QWEN).ctx_size == 4096
    store.save(QWEN, ModelPreset(ctx_size=2048))
    assert store.path.read_text() == "[Qwen3-8B-Q4_K_M]\nctx-size = 2048\n"


def test_an_unknown_option_is_refused_with_its_line(store: PresetStore) -> None:
    write(store, HAND_WRITTEN.replace("ngl = 20", "ctx-sise = 20"))
    with pytest.raises(PresetError) as e:
        store.effective(QWEN)
    msg = str(e.value)
    assert f"{store.path} line 9: unknown option 'ctx-sise' in [qwen/qwen3-8b]" in msg
    assert "ctx-size" in msg  # the known options are listed
    assert store.problem(QWEN) == msg
    # another model, and a section the app does not know, are not held up
    assert store.problem(OTHER) is None


def test_a_value_it_cannot_take_is_refused_with_its_line(store: PresetStore) -> None:
    write(store, HAND_WRITTEN.replace("ngl = 20", "ngl = lots"))
    with pytest.raises(PresetError, match=r"line 9: ngl = 'lots' in \[qwen/qwen3-8b\]: .*integer"):
        store.own(QWEN)
    write(store, "[*]\nflash-attn = sometimes\n")
    with pytest.raises(PresetError, match=r"line 2: flash-attn = 'sometimes' in \[\*\]"):
        store.effective(OTHER)


def test_a_line_it_cannot_read_holds_up_every_model_and_is_never_overwritten(
    store: PresetStore,
) -> None:
    broken = HAND_WRITTEN + "this is not ini\n"
    write(store, broken)
    for model in (QWEN, OTHER):
        assert "line 15: cannot read 'this is not ini'" in (store.problem(model) or "")
    with pytest.raises(PresetError):
        store.save(QWEN, ModelPreset(ctx_size=1))
    assert store.path.read_text() == broken


def test_saving_keeps_unknown_sections_comments_and_order(store: PresetStore) -> None:
    write(store, HAND_WRITTEN)
    saved: list[int] = []
    store.subscribe(lambda: saved.append(1))
    store.save(QWEN, ModelPreset(ctx_size=32768, mmap=True, pinned=True))
    text = store.path.read_text()
    assert text == HAND_WRITTEN.replace(
        "ctx-size = 16384 ; the 8B gets room\nngl = 20\nno-mmap = true\n",
        "ctx-size = 32768 ; the 8B gets room\nmmap = true\npinned = true\n",
    )
    assert saved == [1]
    assert store.own(QWEN).set_fields() == {"ctx_size": 32768, "mmap": True, "pinned": True}


def test_saving_nothing_removes_the_models_section(store: PresetStore) -> None:
    write(store, HAND_WRITTEN)
    store.save(QWEN, ModelPreset())
    assert "qwen" not in store.path.read_text()
    assert not store.has_own(QWEN)
    assert "[ggml-org/gemma-3-4b-it-GGUF:Q4_K_M]" in store.path.read_text()


def test_a_new_file_says_what_it_is(store: PresetStore) -> None:
    assert store.effective(QWEN).is_empty()  # no file: nothing set
    store.save(OTHER, ModelPreset(ctx_size=1024, flash_attn="on"))
    text = store.path.read_text()
    assert text.startswith("; Per-model settings of FamilyLog Tray, in llama.cpp's preset format")
    assert text.endswith("version = 1\n\n[local/other]\nctx-size = 1024\nflash-attn = on\n")
    # written atomically: no temp file left beside it
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["models.ini"]


def test_a_hand_edit_applies_without_a_restart(store: PresetStore) -> None:
    write(store, "[qwen/qwen3-8b]\nctx-size = 1000\n")
    assert store.effective(QWEN).ctx_size == 1000
    write(store, "[qwen/qwen3-8b]\nctx-size = 2000000\n")
    st = store.path.stat()
    os.utime(store.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert store.effective(QWEN).ctx_size == 2000000


def test_llama_cpps_spellings_are_read(store: PresetStore) -> None:
    write(
        store,
        "[qwen/qwen3-8b]\nc = 4096\nLLAMA_ARG_N_GPU_LAYERS = all\nfa = 1\nnkvo = 1\n"
        "load-on-start = yes\ndraft = 12\nversion = 1\n",
    )
    assert store.own(QWEN).set_fields() == {
        "ctx_size": 4096,
        "n_gpu_layers": -1,
        "flash_attn": "on",
        "kv_offload": False,
        "load_on_startup": True,
        "draft_max": 12,
    }


def test_a_failed_write_changes_nothing(store: PresetStore, monkeypatch) -> None:
    write(store, HAND_WRITTEN)
    assert store.own(QWEN).ctx_size == 16384

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.core.presets.store.write_atomic", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.save(QWEN, ModelPreset(ctx_size=1))
    assert store.path.read_text() == HAND_WRITTEN
    assert store.own(QWEN).ctx_size == 16384  # what the app reads is still the file


def test_a_models_rpc_workers_as_llama_cpp_spells_them(store: PresetStore) -> None:
    # llama.cpp's preset key for --rpc; the app runs the model across these workers
    write(store, "[qwen/qwen3-8b]\nrpc = 192.168.1.20:50052, [fd00::3]:50052\n")
    assert store.own(QWEN).rpc == "192.168.1.20:50052,[fd00::3]:50052"
    write(store, "[qwen/qwen3-8b]\nLLAMA_ARG_RPC = 192.168.1.20:50052\n")
    assert store.own(QWEN).rpc == "192.168.1.20:50052"
    write(store, "[qwen/qwen3-8b]\nrpc = desktop\n")
    with pytest.raises(PresetError, match=r"line 2: rpc = 'desktop' .*'desktop' is not host:port"):
        store.own(QWEN)
