"""Other machines over a real network link: two network namespaces made for the test and
joined by a veth pair (10.231.x.1 and .2, addresses that exist only inside them), never the
host's own network. In "remote": a worker (``--rpc-worker`` on its network address, which
needs ``RPC_WORKER_ALLOW_REMOTE``) and a peer (``--headless`` on its network address). In
"home": the app (``--headless``) using both. A client inside "home" asks the app: a model
across the remote worker answers as here; the peer's model answers through the app.

Needs root and ``ip netns`` (skipped with the reason otherwise).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

CLIENT = r"""
import json, sys, urllib.request
base = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)
def get(path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.load(r)
chat = lambda model: post("/v1/chat/completions", {"model": model, "max_tokens": 16,
    "temperature": 0, "seed": 42, "messages": [{"role": "user", "content": "Hello"}]}
    )["choices"][0]["message"]["content"]
out = {}
key, worker, peer_model = sys.argv[2], sys.argv[3], sys.argv[4]
out["load"] = post("/api/v1/models/load", {"model": key, "rpc": worker})["config"].get("rpc")
out["across"] = chat(key)
post("/api/v1/models/unload", {"instance_id": key})
post("/api/v1/models/load", {"model": key})
out["here"] = chat(key)
out["listed"] = [m["key"] for m in get("/api/v1/models")["models"]]
out["peer"] = chat(peer_model)
print(json.dumps(out))
"""


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def netns_unavailable() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    name = f"flt-probe-{secrets.token_hex(3)}"
    made = run("ip", "netns", "add", name)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    run("ip", "netns", "del", name)
    return None


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str, str]]:
    """("home", "remote", home's address, remote's address): two namespaces of this test,
    joined by a veth pair; deleted (their links with them) at the end."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    tag = secrets.token_hex(3)
    home, remote = f"flt-h-{tag}", f"flt-r-{tag}"
    net = f"10.231.{secrets.randbelow(250) + 1}"
    steps = [
        ("ip", "netns", "add", home),
        ("ip", "netns", "add", remote),
        (
            "ip",
            "link",
            "add",
            f"fh{tag}",
            "netns",
            home,
            "type",
            "veth",
            "peer",
            "name",
            f"fr{tag}",
            "netns",
            remote,
        ),
        ("ip", "-n", home, "addr", "add", f"{net}.1/30", "dev", f"fh{tag}"),
        ("ip", "-n", remote, "addr", "add", f"{net}.2/30", "dev", f"fr{tag}"),
        ("ip", "-n", home, "link", "set", f"fh{tag}", "up"),
        ("ip", "-n", remote, "link", "set", f"fr{tag}", "up"),
        ("ip", "-n", home, "link", "set", "lo", "up"),
        ("ip", "-n", remote, "link", "set", "lo", "up"),
    ]
    try:
        for step in steps:
            done = run(*step)
            if done.returncode != 0:
                pytest.skip(f"{' '.join(step)}: {done.stderr.strip()}")
        yield home, remote, f"{net}.1", f"{net}.2"
    finally:
        run("ip", "netns", "del", home)
        run("ip", "netns", "del", remote)


def in_ns(ns: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    """``familylog-tray`` inside namespace ``ns`` (``ip netns exec`` becomes the process)."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "app.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


def ready(p: subprocess.Popen, word: str) -> None:
    line = p.stdout.readline()
    assert word in line, (line, p.stderr.read() if p.poll() is not None else "")


def test_a_worker_and_a_peer_on_another_network(
    namespaces, llama_server_bin, tiny_model, tiny_model_b, tmp_path: Path
) -> None:
    home, remote, _, far = namespaces
    worker_port, peer_port, api_port = free_port(), free_port(), free_port()
    base = {"LLAMA_SERVER_PATH": llama_server_bin, "LLAMA_CTX_SIZE": "512"}
    procs: list[subprocess.Popen] = []
    try:
        # the worker needs the explicit setting for a network address
        env = {**base, "FAMILYLOG_TRAY_HOME": str(tmp_path / "w")}
        refused = in_ns(remote, "--rpc-worker", "--host", far, "--port", str(worker_port), env=env)
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 2 and "RPC_WORKER_ALLOW_REMOTE" in err, err
        env["RPC_WORKER_ALLOW_REMOTE"] = "true"
        procs.append(
            in_ns(remote, "--rpc-worker", "--host", far, "--port", str(worker_port), env=env)
        )
        ready(procs[-1], f"Sharing this GPU on {far}:{worker_port}")
        peer_env = {
            **base,
            "FAMILYLOG_TRAY_HOME": str(tmp_path / "peer"),
            "LLM_MODEL_GGUF": str(tiny_model_b),
            "LLM_MODEL_ID": "family/far-llm",
            "API_HOST": far,
            "API_ALLOW_REMOTE": "true",
            "API_PORT": str(peer_port),
            "LLAMA_LLM_PORT": str(free_port()),
        }
        procs.append(in_ns(remote, "--headless", env=peer_env))
        ready(procs[-1], "running headless")
        app_env = {
            **base,
            "FAMILYLOG_TRAY_HOME": str(tmp_path / "home"),
            "LLM_MODEL_GGUF": str(tiny_model),
            "LLM_MODEL_ID": "family/home-llm",
            "API_PORT": str(api_port),
            "LLAMA_LLM_PORT": str(free_port()),
            "PEERS": f"far http://{far}:{peer_port}",
        }
        procs.append(in_ns(home, "--headless", env=app_env))
        ready(procs[-1], "running headless")
        client = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                home,
                sys.executable,
                "-c",
                CLIENT,
                f"http://127.0.0.1:{api_port}",
                "family/home-llm",
                f"{far}:{worker_port}",
                "far/family/far-llm",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        out = json.loads(client.stdout)
        assert out["load"] == [f"{far}:{worker_port}"]
        assert out["across"] == out["here"] and out["here"], out
        assert "far/family/far-llm" in out["listed"], out["listed"]
        assert out["peer"], out
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
