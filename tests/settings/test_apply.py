"""Applying new settings in a running core: the header of a role's new model file is read
in a worker thread, never on the event loop that serves the API and the tray, and the
catalogue names the new file as soon as the apply returns."""

from __future__ import annotations

import threading

from app.core.discovery import gguf_info
from app.core.settings.settings_apply import apply_settings
from tests.support.app import make_core, settings_for
from tests.support.tiny_model import write_tiny_model


async def test_a_new_role_file_is_read_off_the_event_loop(
    tmp_path, monkeypatch, llama_server_bin
) -> None:
    new_file = write_tiny_model(tmp_path / "fresh-llm-Q8_0.gguf", name="fresh-llm")
    core = make_core(settings_for(llama_server_bin))
    read_on: list[threading.Thread] = []
    real = gguf_info.read_gguf_info

    def spy(path):
        read_on.append(threading.current_thread())
        return real(path)

    monkeypatch.setattr(gguf_info, "read_gguf_info", spy)
    new = core.settings.model_copy(update={"LLM_MODEL_GGUF": str(new_file)})
    lines = await apply_settings(core.live, core.lifecycle, new)
    assert read_on and all(t is not threading.main_thread() for t in read_on), read_on
    llm = core.catalogue.role("llm")
    assert llm.path == str(new_file) and llm.info is not None and llm.info.name == "fresh-llm"
    assert any("LLM model" in line for line in lines), lines
