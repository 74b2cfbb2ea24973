"""Other machines in the tray and the models window: "Share this GPU with other machines"
(saved, in effect at once, the missing authentication said), the RPC workers and the peers
with their state and the reason, against a real core, the app's own worker and a peer that
does not answer; a model too big for this GPU loaded from the tray runs across a worker."""

from __future__ import annotations

from app.core.machines.shared_worker import ShareState
from app.core.machines.workers import WorkerState
from app.core.models.launch_args import rpc_of
from app.core.servers.states import ServerState
from app.paths import AppPaths
from app.settings_load import load_settings
from tests.conftest import free_port
from tests.machines.conftest import FreeGpu
from tests.ui.test_tray_menu import menu_texts


def test_share_this_gpu_from_the_tray_and_see_the_machines(make_app, arun, wait) -> None:
    port, nobody = free_port(), free_port()
    app = make_app(
        RPC_WORKER_PORT=port,
        RPC_WORKERS=f"127.0.0.1:{port}",  # this machine's own worker, used as another's
        PEERS=f"laptop http://127.0.0.1:{nobody}",
    )
    core = app.core
    menu = app.menu
    menu.rebuild()
    machines = menu.machines
    assert not machines.act_share.isChecked()
    assert "no authentication" in machines.act_share.toolTip()
    assert machines.share_status.text() == "Not sharing this GPU"

    machines.act_share.trigger()  # the switch: saved, and started at once
    wait(lambda: core.shared_worker.status.state is ShareState.RUNNING, 30)
    assert load_settings(AppPaths.resolve()).RPC_WORKER_ENABLED is True
    arun(core.workers.check())
    arun(core.peers.check())
    assert core.workers.statuses[f"127.0.0.1:{port}"].state is WorkerState.ONLINE

    menu.rebuild()
    texts = menu_texts(menu.machines.menu)
    assert menu.machines.act_share.isChecked()
    assert any(t.startswith(f"Sharing this GPU on 127.0.0.1:{port}") for t in texts), texts
    assert any(t.startswith(f"127.0.0.1:{port}: online") for t in texts), texts
    laptop = next(t for t in texts if "laptop" in t)
    assert laptop.startswith("⚠ laptop") and "offline (cannot connect" in laptop, laptop
    assert "Sharing this GPU" in app.tray.icon.toolTip()
    assert "0 of 1 peer online" in app.tray.icon.toolTip()

    app.show_models()
    panel = app.models_window.machines
    wait(lambda: panel.share.isChecked())
    rows = panel.rows()
    assert any(f"127.0.0.1:{port}: online" in r for r in rows), rows
    assert any("laptop" in r and "offline" in r for r in rows), rows
    assert panel.warning.isVisible() or not panel.isVisible()
    assert "no authentication" in panel.warning.text()

    panel.share.setChecked(False)  # the window's switch: stopped at once
    wait(lambda: core.shared_worker.status.state is ShareState.OFF, 30)
    assert load_settings(AppPaths.resolve()).RPC_WORKER_ENABLED is False
    wait(lambda: not panel.share.isChecked())


def test_a_model_too_big_for_this_gpu_loads_across_a_worker_from_the_tray(
    make_app, arun, wait, tiny_model, port
) -> None:
    # This GPU has 100 MB free (a stand-in); the worker (this machine's own, shared) has the
    # memory its devices report through the RPC protocol.
    worker_port = free_port()
    address = f"127.0.0.1:{worker_port}"
    app = make_app(
        gpu=FreeGpu(100 * 1024**2),
        LLM_MODEL_GGUF=str(tiny_model),
        RUN_MODE="auto",
        RPC_WORKER_ENABLED="true",
        RPC_WORKER_PORT=worker_port,
        RPC_WORKERS=address,
    )
    core = app.core
    wait(lambda: core.shared_worker.status.state is ShareState.RUNNING, 30)
    arun(core.workers.check())
    assert core.workers.statuses[address].state is WorkerState.ONLINE

    app.menu.rebuild()
    llm = app.menu.profile_actions["llm"]
    llm.load.trigger()  # the tray's "Load LLM", as for a model that fits here
    wait(lambda: core.manager.status(port).state is ServerState.READY, 60)
    assert rpc_of(core.manager.status(port).spec.extra_args) == (address,)

    arun(core.workers.check())
    app.menu.rebuild()
    texts = menu_texts(app.menu.machines.menu)
    assert any(t.startswith(f"{address}: in use, running LLM") for t in texts), texts
    assert app.menu.profile_actions["llm"].header.text() == "LLM: ready · tiny-llama"
