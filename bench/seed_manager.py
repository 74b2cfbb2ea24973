"""The seed's LlamaServerManager algorithm as printed (1 s polling, 2 s sleep on switch).

Kept only as the baseline for bench/manager.py; comments translated from the seed.
"""

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx


class SeedLlamaServerManager:
    def __init__(self, llama_server_path: str):
        self._server_path = llama_server_path
        self._processes: dict[int, subprocess.Popen] = {}
        self._model_paths: dict[int, str] = {}
        self._log_files: dict[int, object] = {}
        if not Path(llama_server_path).exists():
            raise FileNotFoundError(f"llama-server not found: {llama_server_path}")

    async def load_model(
        self,
        model_path,
        port=8080,
        n_gpu_layers=-1,
        ctx_size=8192,
        mmproj=None,
        n_threads=None,
        extra_args=None,
    ):
        if port in self._processes:
            await self.unload_model(port)
        if not Path(model_path).exists():
            raise FileNotFoundError(model_path)
        cmd = [
            self._server_path,
            "--model",
            model_path,
            "--port",
            str(port),
            "--n-gpu-layers",
            str(n_gpu_layers),
            "--ctx-size",
            str(ctx_size),
            "--host",
            "127.0.0.1",
        ]
        if mmproj:
            cmd.extend(["--mmproj", mmproj])
        if n_threads:
            cmd.extend(["--threads", str(n_threads)])
        if extra_args:
            cmd.extend(extra_args)
        log_dir = Path("logs")
        log_dir.mkdir(exist_ok=True)
        log_file = open(log_dir / f"llama-server-{port}.log", "a")  # noqa: SIM115
        self._log_files[port] = log_file
        process = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=os.setsid
        )  # noqa: PLW1509
        self._processes[port] = process
        self._model_paths[port] = model_path
        try:
            await self.wait_ready(port, timeout=120)
        except TimeoutError:
            await self.unload_model(port)
            raise

    async def unload_model(self, port):
        process = self._processes.get(port)
        if process is None:
            return
        pid = process.pid
        try:
            os.killpg(os.getpgid(pid), signal.SIGTERM)
        except ProcessLookupError:
            self._cleanup_port(port)
            return
        for _ in range(100):
            if process.poll() is not None:
                self._cleanup_port(port)
                return
            await asyncio.sleep(0.1)
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
            process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self._cleanup_port(port)

    async def switch_model(self, port, new_model_path, **kwargs):
        await self.unload_model(port)
        await asyncio.sleep(2)
        await self.load_model(new_model_path, port=port, **kwargs)

    async def wait_ready(self, port, timeout=60):
        url = f"http://127.0.0.1:{port}/health"
        async with httpx.AsyncClient(timeout=5) as client:
            for _elapsed in range(timeout):
                process = self._processes.get(port)
                if process and process.poll() is not None:
                    raise RuntimeError(f"exited with {process.returncode}")
                try:
                    r = await client.get(url)
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        return
                except (httpx.ConnectError, httpx.ReadTimeout):
                    pass
                await asyncio.sleep(1)
        raise TimeoutError(port)

    async def shutdown(self):
        for port in list(self._processes):
            await self.unload_model(port)

    def _cleanup_port(self, port):
        self._processes.pop(port, None)
        self._model_paths.pop(port, None)
        f = self._log_files.pop(port, None)
        if f:
            f.close()
