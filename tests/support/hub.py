"""A stand-in Hugging Face Hub on loopback, speaking the routes ``huggingface_hub`` uses.

Point ``HF_ENDPOINT`` at ``hub.url`` and the real client library talks to it:

- ``GET /api/models?search=&filter=&author=&sort=&direction=&limit=`` (``HfApi.list_models``);
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``, with ``?blobs=true``
  the siblings' size, blob id and LFS sha256 (``HfApi.model_info(files_metadata=True)``);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (``HfApi.list_repo_tree``);
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{file}``: for a GGUF (an LFS file on the real hub) a
  302 to a "CDN" on another port (another origin, so the client drops its token), carrying
  ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; the CDN answers
  ``Range`` requests with 206 and ``Content-Range``;
- errors as the hub sends them: ``X-Error-Code`` (``RepoNotFound``, ``GatedRepo``,
  ``RevisionNotFound``, ``EntryNotFound``) and ``X-Error-Message``, 401 for a gated
  repository without a token, 403 with a token that was not granted access.

Faults for tests: ``cut(file, at, times)`` closes the connection after byte ``at`` of the
next ``times`` downloads of a file; ``hold(file, at)`` stops sending at byte ``at`` until
``release(file)``; ``publish_wrong_sha(file)`` publishes a SHA-256 the bytes do not have.
``requests`` records every request (method, path, Range, whether a token came).

It runs on its own thread and event loop, so synchronous tests, asyncio tests, Qt tests
and tests of an app in another process can all use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.gguf_tree import write_gguf, write_mmproj
from tests.support.tiny_model import write_tiny_model

CHUNK = 64 * 1024
LFS_POINTER_SIZE = 134


@dataclass
class HubFile:
    path: str  # in the repository
    source: Path  # its bytes on disk
    size: int
    sha256: str
    published_sha256: str  # what the hub says (wrong when a test asks)


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, HubFile]
    commit: str
    gated: str | bool = False  # False, "auto" or "manual"
    private: bool = False
    downloads: int = 0
    tags: tuple[str, ...] = ("gguf",)


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    token: str | None


@dataclass
class _Fault:
    cut_at: int | None = None
    cuts_left: int = 0
    hold_at: int | None = None
    released: asyncio.Event | None = None
    held: threading.Event = field(default_factory=threading.Event)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class StandInHub:
    """The hub. ``add_repo`` before or while it runs; ``start``/``stop`` (or the fixture)."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.tokens: dict[str, set[str]] = {}  # token -> gated repositories it was granted
        self.requests: list[Request] = []
        self._faults: dict[str, _Fault] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.cdn_port = 0

    # ── Contents ──────────────────────────────────────────────────────────────
    def add_repo(
        self,
        repo_id: str,
        files: dict[str, Path],
        *,
        gated: str | bool = False,
        private: bool = False,
        downloads: int = 0,
        tags: tuple[str, ...] = ("gguf",),
    ) -> HubRepo:
        """Serve ``files`` (path in the repository -> file on disk) as ``repo_id``."""
        hub_files = {}
        for name, source in files.items():
            digest = sha256_of(source)
            hub_files[name] = HubFile(name, source, source.stat().st_size, digest, digest)
        commit = hashlib.sha1(
            (repo_id + "".join(f.sha256 for f in hub_files.values())).encode()
        ).hexdigest()
        repo = HubRepo(repo_id, hub_files, commit, gated, private, downloads, tags)
        self.repos[repo_id] = repo
        return repo

    def grant(self, token: str, *repos: str) -> None:
        """A valid token, granted access to the gated ``repos``."""
        self.tokens.setdefault(token, set()).update(repos)

    def publish_wrong_sha(self, repo_id: str, path: str) -> None:
        f = self.repos[repo_id].files[path]
        f.published_sha256 = hashlib.sha256(b"not these bytes" + f.sha256.encode()).hexdigest()

    def cut(self, path: str, at: int, times: int = 1) -> None:
        """Close the connection after byte ``at`` of the next ``times`` downloads of ``path``."""
        fault = self._faults.setdefault(path, _Fault())
        fault.cut_at, fault.cuts_left = at, times

    def hold(self, path: str, at: int) -> threading.Event:
        """Stop sending ``path`` at byte ``at`` until ``release``; the event is set once a
        download has reached that byte."""
        fault = self._faults.setdefault(path, _Fault())
        fault.hold_at = at
        fault.held.clear()
        assert self._loop is not None, "start the hub first"
        fault.released = asyncio.Event()  # made here: only the hub's loop waits on it
        return fault.held

    def release(self, path: str) -> None:
        fault = self._faults.get(path)
        if fault is not None and fault.released is not None and self._loop is not None:
            fault.hold_at = None
            self._loop.call_soon_threadsafe(fault.released.set)

    def downloads_of(self, path: str) -> list[Request]:
        """The GET requests of ``path``'s bytes (at the CDN)."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + path)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ── Running ───────────────────────────────────────────────────────────────
    def start(self) -> StandInHub:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:  # pragma: no cover - reported to start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="stand-in-hub", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"the stand-in hub did not start: {errors}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    async def _shutdown(self) -> None:
        for fault in self._faults.values():  # never leave a download hanging
            fault.hold_at = None
            if fault.released is not None:
                fault.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self) -> None:
        app = web.Application()
        r = app.router
        r.add_get("/api/models", self._search)
        r.add_get("/api/models/{org}/{name}", self._info)
        r.add_get("/api/models/{org}/{name}/revision/{rev}", self._info)
        r.add_get("/api/models/{org}/{name}/tree/{rev}", self._tree)
        r.add_get("/api/models/{org}/{name}/tree/{rev}/{path:.+}", self._tree)
        r.add_route("HEAD", "/{org}/{name}/resolve/{rev}/{path:.+}", self._resolve)
        r.add_get("/{org}/{name}/resolve/{rev}/{path:.+}", self._resolve, allow_head=False)
        r.add_route("HEAD", "/cdn/{org}/{name}/{sha}/{path:.+}", self._cdn)
        r.add_get("/cdn/{org}/{name}/{sha}/{path:.+}", self._cdn, allow_head=False)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        cdn = web.TCPSite(self._runner, "127.0.0.1", 0)
        await cdn.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.cdn_port = cdn._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # ── Helpers ───────────────────────────────────────────────────────────────
    def _record(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        self.requests.append(
            Request(request.method, request.path, request.headers.get("Range"), token)
        )
        return token

    @staticmethod
    def _error(status: int, code: str | None, message: str, **headers: str) -> web.Response:
        h = {"X-Error-Message": message, **headers}
        if code:
            h["X-Error-Code"] = code
        return web.json_response({"error": message}, status=status, headers=h)

    def _repo(self, request: web.Request, token: str | None) -> HubRepo | web.Response:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        repo = self.repos.get(repo_id)
        if token is not None and token not in self.tokens:
            return self._error(401, None, "Invalid credentials in Authorization header")
        if repo is None or (repo.private and repo_id not in self.tokens.get(token or "", ())):
            return self._error(401, "RepoNotFound", "Repository not found")
        rev = request.match_info.get("rev")
        if rev is not None and rev not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return repo

    def _summary(self, repo: HubRepo) -> dict:
        return {
            "_id": repo.commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.downloads // 100,
            "tags": list(repo.tags),
            "pipeline_tag": "text-generation",
            "library_name": "gguf",
            "createdAt": "2025-01-01T00:00:00.000Z",
            "lastModified": "2025-06-01T00:00:00.000Z",
            "sha": repo.commit,
        }

    @staticmethod
    def _lfs(f: HubFile) -> dict:
        return {"size": f.size, "sha256": f.published_sha256, "pointerSize": LFS_POINTER_SIZE}

    # ── Routes ────────────────────────────────────────────────────────────────
    async def _search(self, request: web.Request) -> web.Response:
        token = self._record(request)
        q = request.query
        search = q.get("search", "").lower()
        filters = q.getall("filter", [])
        author = q.get("author")
        found = [
            r
            for r in self.repos.values()
            if search in r.repo_id.lower()
            and all(f in r.tags for f in filters)
            and (author is None or r.repo_id.split("/")[0] == author)
            and (not r.private or r.repo_id in self.tokens.get(token or "", ()))
        ]
        if q.get("sort") == "downloads":
            found.sort(key=lambda r: r.downloads, reverse=q.get("direction") != "1")
        limit = int(q.get("limit", "1000"))
        return web.json_response([self._summary(r) for r in found[:limit]])

    async def _info(self, request: web.Request) -> web.Response:
        token = self._record(request)
        repo = self._repo(request, token)
        if isinstance(repo, web.Response):
            return repo
        blobs = request.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for f in repo.files.values():
            s: dict = {"rfilename": f.path}
            if blobs:
                s.update(size=f.size, blobId=hashlib.sha1(f.sha256.encode()).hexdigest())
                s["lfs"] = self._lfs(f)
            siblings.append(s)
        body = self._summary(repo)
        body.update(siblings=siblings, usedStorage=sum(f.size for f in repo.files.values()))
        return web.json_response(body)

    async def _tree(self, request: web.Request) -> web.Response:
        token = self._record(request)
        repo = self._repo(request, token)
        if isinstance(repo, web.Response):
            return repo
        prefix = request.match_info.get("path", "").strip("/")
        recursive = request.query.get("recursive", "").lower() in ("1", "true")
        out: list[dict] = []
        dirs: set[str] = set()
        for f in sorted(repo.files.values(), key=lambda f: f.path):
            if prefix and not f.path.startswith(prefix + "/"):
                continue
            rest = f.path[len(prefix) + 1 :] if prefix else f.path
            if "/" in rest and not recursive:
                top = (prefix + "/" if prefix else "") + rest.split("/")[0]
                if top not in dirs:
                    dirs.add(top)
                    out.append({"type": "directory", "oid": repo.commit, "size": 0, "path": top})
                continue
            entry = {
                "type": "file",
                "oid": hashlib.sha1(f.sha256.encode()).hexdigest(),
                "size": f.size,
                "path": f.path,
                "lfs": {"oid": f.published_sha256, "size": f.size, "pointerSize": LFS_POINTER_SIZE},
            }
            out.append(entry)
        return web.json_response(out)

    async def _resolve(self, request: web.Request) -> web.Response:
        token = self._record(request)
        repo = self._repo(request, token)
        if isinstance(repo, web.Response):
            return repo
        if repo.gated and repo.repo_id not in self.tokens.get(token or "", ()):
            if token is None:
                return self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to "
                    "it and be authenticated to access it. Please log in.",
                )
            return self._error(
                403,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted and you are not in the "
                f"authorized list. Visit https://huggingface.co/{repo.repo_id} to ask for access.",
            )
        f = repo.files.get(request.match_info["path"])
        if f is None:
            return self._error(
                404, "EntryNotFound", "Entry not found", **{"X-Repo-Commit": repo.commit}
            )
        cdn = f"http://127.0.0.1:{self.cdn_port}/cdn/{repo.repo_id}/{f.sha256}/{f.path}"
        return web.Response(
            status=302,
            headers={
                "Location": cdn,
                "X-Repo-Commit": repo.commit,
                "X-Linked-Etag": f'"{f.published_sha256}"',
                "X-Linked-Size": str(f.size),
                "ETag": f'"{hashlib.sha1(f.sha256.encode()).hexdigest()}"',
                "Accept-Ranges": "bytes",
            },
        )

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        repo = self.repos.get(f"{request.match_info['org']}/{request.match_info['name']}")
        f = repo.files.get(request.match_info["path"]) if repo else None
        if f is None or f.sha256 != request.match_info["sha"]:
            return web.Response(status=404, text="NoSuchKey")
        start, end = 0, f.size - 1
        rng = request.http_range
        partial = rng.start is not None or rng.stop is not None
        if partial:
            start = rng.start or 0
            end = min((rng.stop or f.size) - 1, f.size - 1)
            if start >= f.size:
                return web.Response(
                    status=416, headers={"Content-Range": f"bytes */{f.size}"}, text="bad range"
                )
        headers = {
            "ETag": f'"{f.sha256}"',
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start + 1),
            "Content-Type": "application/octet-stream",
        }
        if partial:
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        resp = web.StreamResponse(status=206 if partial else 200, headers=headers)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        fault = self._faults.get(f.path)
        cut_at = None
        if fault is not None and fault.cut_at is not None and fault.cuts_left > 0:
            fault.cuts_left -= 1
            cut_at = fault.cut_at
        pos = start
        with f.source.open("rb") as src:
            src.seek(start)
            while pos <= end:
                n = min(CHUNK, end + 1 - pos)
                for stop in (cut_at, fault.hold_at if fault else None):
                    if stop is not None and pos < stop:
                        n = min(n, stop - pos)
                if fault is not None and fault.hold_at is not None and pos == fault.hold_at:
                    fault.held.set()
                    assert fault.released is not None
                    await fault.released.wait()
                    continue
                if cut_at is not None and pos >= cut_at:
                    request.transport.close()  # the connection drops mid-body
                    return resp
                block = src.read(n)
                await resp.write(block)
                pos += len(block)
        await resp.write_eof()
        return resp


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandInHub]:
    """A started stand-in hub with ``HF_ENDPOINT`` pointing at it and no token anywhere
    (huggingface_hub reads its token file's path once, at import: pointed here too)."""
    from huggingface_hub import constants

    h = StandInHub().start()
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-stored-tokens"))
    try:
        yield h
    finally:
        h.stop()


# ── What the tests serve ─────────────────────────────────────────────────────
VISION_REPO = "Qwen/Qwen3-VL-8B-Instruct-GGUF"
LLM_REPO = "Qwen/Qwen3-8B-GGUF"


@pytest.fixture(scope="session")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated GGUFs to serve: a vision model with two projectors, a chat model (the tiny
    llama llama-server answers with) in two quantizations, and a split model."""
    d = tmp_path_factory.mktemp("hub-files")
    f: dict[str, Path] = {}
    f["vl_q4"] = write_gguf(
        d / "Qwen3VL-8B-Instruct-Q4_K_M.gguf",
        "qwen3vl",
        name="Qwen3 VL 8B Instruct",
        ctx=262144,
        kv={
            "qwen3vl.block_count": 36,
            "qwen3vl.attention.head_count": 32,
            "qwen3vl.attention.head_count_kv": 8,
            "qwen3vl.embedding_length": 4096,
        },
    )
    f["vl_q8"] = write_gguf(d / "Qwen3VL-8B-Instruct-Q8_0.gguf", "qwen3vl", file_type=7)
    f["vl_mmproj_f16"] = write_mmproj(d / "mmproj-Qwen3VL-8B-Instruct-F16.gguf")
    f["vl_mmproj_q8"] = write_mmproj(d / "mmproj-Qwen3VL-8B-Instruct-Q8_0.gguf")
    f["llm_q8"] = write_tiny_model(d / "Qwen3-8B-Q8_0.gguf", name="tiny-qwen")
    f["llm_f32"] = write_tiny_model(d / "Qwen3-8B-F32.gguf", seed=3, name="tiny-qwen")
    f["split1"] = write_gguf(d / "Big-Q4_K_M-00001-of-00002.gguf", tensors={"a": (64, 64)})
    f["split2"] = write_gguf(d / "Big-Q4_K_M-00002-of-00002.gguf", tensors={"b": (64, 64)})
    f["readme"] = d / "README.md"
    f["readme"].write_text("# a model card\n")
    return f


def serve_pair(standin: StandInHub, files: dict[str, Path]) -> None:
    """The seed's pair on the stand-in hub: the vision repository and the LLM repository."""
    standin.add_repo(
        VISION_REPO,
        {
            "Qwen3VL-8B-Instruct-Q4_K_M.gguf": files["vl_q4"],
            "Qwen3VL-8B-Instruct-Q8_0.gguf": files["vl_q8"],
            "mmproj-Qwen3VL-8B-Instruct-F16.gguf": files["vl_mmproj_f16"],
            "mmproj-Qwen3VL-8B-Instruct-Q8_0.gguf": files["vl_mmproj_q8"],
            "README.md": files["readme"],
        },
        downloads=5000,
    )
    standin.add_repo(
        LLM_REPO,
        {
            "Qwen3-8B-Q8_0.gguf": files["llm_q8"],
            "Qwen3-8B-F32.gguf": files["llm_f32"],
            "README.md": files["readme"],
        },
        downloads=9000,
    )


def serve_ladder(standin: StandInHub, files: dict[str, Path]) -> None:
    """Every LLM the first run may suggest (``starter.LLM_LADDER``), each as one file of
    its quantization (the tiny llama llama-server answers with)."""
    from app.core.downloads.starter import LLM_LADDER

    for c in LLM_LADDER:
        name = c.repo.split("/")[1].removesuffix("-GGUF")
        standin.add_repo(c.repo, {f"{name}-{c.quant}.gguf": files["llm_q8"]}, downloads=100)
