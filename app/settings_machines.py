"""The settings of the "Other machines" tab, a group of ``app.config.Settings``' fields kept
in their own module (``Settings`` inherits them, so ``from app.config import Settings`` is
the one way to read them): this machine's GPU shared as a llama.cpp RPC worker, the workers
of other machines a model may run across, and the peer servers whose models the app lists
and forwards to.

The RPC protocol has no authentication: a worker that other machines can reach runs
whatever they send it, so it binds to a loopback address unless ``RPC_WORKER_ALLOW_REMOTE``
is set as well as a network address.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from app.settings_meta import MACHINES, NOW, in_tab
from app.settings_types import CommaList, Peers, RpcWorkers

NO_AUTH = (
    "The RPC protocol has no authentication: any program that reaches the worker's port can "
    "use this GPU and this computer's memory, and send it data it trusts"
)


class MachineSettings(BaseSettings):
    """The "Other machines" fields of ``Settings`` (applied at once: the worker and the
    checks of workers and peers follow a change)."""

    RPC_WORKER_ENABLED: bool = Field(
        default=False,
        title="Share this GPU with other machines",
        description="Run llama.cpp's ggml-rpc-server, so a llama-server on another machine "
        f"can put layers of a model on this one (--rpc). {NO_AUTH}",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    RPC_WORKER_HOST: str = Field(
        default="127.0.0.1",
        title="Worker address",
        description="The address the worker listens on; a network address (e.g. 0.0.0.0) "
        "needs 'Let other machines reach the worker' too",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    RPC_WORKER_PORT: int = Field(
        default=50052,
        ge=1,
        le=65535,
        title="Worker port",
        description="The worker's port (ggml-rpc-server's default is 50052)",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    RPC_WORKER_ALLOW_REMOTE: bool = Field(
        default=False,
        title="Let other machines reach the worker",
        description="Allow a worker address other machines can reach. Only on a network you "
        f"trust: {NO_AUTH}",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    RPC_WORKER_DEVICES: CommaList = Field(
        default="",
        title="Worker devices",
        description="The devices the worker offers, comma-separated as llama.cpp names them "
        "(e.g. Vulkan0,CUDA1; `llama-server --list-devices` lists them); empty: all",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    RPC_WORKER_CACHE: bool = Field(
        default=False,
        title="Worker file cache",
        description="Keep the tensors it is sent in a local cache (ggml-rpc-server -c), so "
        "the next load of the same model sends less over the network",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    RPC_WORKERS: RpcWorkers = Field(
        default="",
        title="RPC workers to use",
        description="Other machines' workers, comma-separated host:port, e.g. "
        "192.168.1.20:50052. In auto mode a model that does not fit here alone runs across "
        "them; a model's own settings may name them too (rpc)",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
    PEERS: Peers = Field(
        default="",
        title="Peer servers",
        description="Other servers whose models are listed as <name>/<model> and answered "
        "through this app: 'name URL [key]', one per line or comma-separated, e.g. "
        "laptop http://laptop.lan:1234",
        json_schema_extra=in_tab(MACHINES, NOW),
    )
