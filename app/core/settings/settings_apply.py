"""Use new settings in a running core, and say which servers still run with the old ones.

Nothing is restarted: a running server keeps its model and arguments until the user
unloads and loads it again.
"""

from __future__ import annotations

from app.config import Settings
from app.core.app_core import AppCore
from app.core.models.profiles import profiles_from_settings
from app.core.servers.states import ServerState

# Settings read only when the app starts.
RESTART_KEYS = (
    "LLAMA_SERVER_PATH",
    "API_HOST",
    "API_PORT",
    "API_KEY",
    "API_ENABLED",
    "API_ALLOW_REMOTE",
    "API_ALLOWED_HOSTS",
    "API_CORS_ORIGINS",
    "API_MAX_BODY_MB",
    "API_BODY_TIMEOUT_SECONDS",
    "API_MAX_CONNECTIONS",
)


def apply_settings(core: AppCore, new: Settings) -> list[str]:
    """Swap ``core``'s settings and profiles; return one line per server with old settings."""
    old = core.settings
    core.settings = new
    core.profiles = profiles_from_settings(new)
    stale = []
    for port, st in core.manager.statuses().items():
        if st.state not in (ServerState.STARTING, ServerState.READY) or st.spec is None:
            continue
        profile = core.profile_for_status(st)
        wanted = None
        if profile is not None:
            kw = core._launch_kwargs(profile)
            wanted = (kw["n_gpu_layers"], kw["ctx_size"], kw["mmproj"], tuple(kw["extra_args"]))
        spec = st.spec
        have = (spec.n_gpu_layers, spec.ctx_size, spec.mmproj, spec.extra_args)
        if profile is None:
            stale.append(
                f"Port {port} runs {st.model_name}, which is no longer a configured model; "
                "unload it when you no longer need it."
            )
        elif have != wanted or (port not in (profile.port, new.LLAMA_PORT)):
            stale.append(
                f"{profile.title} on port {port} still runs with the old settings; "
                "unload and load it to use the new ones."
            )
    changed = [k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)]
    if changed:
        stale.append(f"{', '.join(changed)} take effect when the app is started again.")
    return stale
