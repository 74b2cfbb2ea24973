"""LM Studio's download endpoints, in LM Studio's shapes, on the app's download service:

- ``POST /api/v1/models/download`` ``{"model": "<publisher/repo, repo:QUANT or a hub link>",
  "quantization": "Q4_K_M"}`` (also ``"file"``: one file by name): the job's status, or
  ``{"status": "already_downloaded"}``;
- ``GET /api/v1/models/download/status/{job_id}``: one job's status;
- ``GET /api/v1/models/download/status``: every job, by status.

A job's status: ``job_id``, ``status`` (``downloading``, ``paused``, ``completed``,
``failed``), ``total_size_bytes``, ``downloaded_bytes``, ``started_at``, and while it
downloads ``bytes_per_second`` and ``estimated_completion``, once done ``completed_at``
(ISO 8601). Ours beside them: ``model`` and ``repo``, ``state`` (``queued``, ``verifying``
and ``cancelled`` too), ``model_key`` once the catalogue lists it, ``error`` on failure.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from app.core.api.common import CONTEXT, ApiContext, ApiError, parse_json_object
from app.core.downloads.jobs import (
    CANCELLED,
    COMPLETED,
    DOWNLOADING,
    FAILED,
    PAUSED,
    QUEUED,
    VERIFYING,
    DownloadJob,
)
from app.core.downloads.refs import DownloadRefused
from app.core.downloads.service import Downloads

STATUS = {
    QUEUED: "downloading",
    DOWNLOADING: "downloading",
    VERIFYING: "downloading",
    PAUSED: "paused",
    COMPLETED: "completed",
    FAILED: "failed",
    CANCELLED: "failed",
}


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_status(job: DownloadJob) -> dict[str, Any]:
    status = STATUS[job.state]
    out: dict[str, Any] = {
        "job_id": job.id,
        "status": status,
        "total_size_bytes": job.total,
        "downloaded_bytes": job.total if job.state == COMPLETED else job.downloaded,
        "started_at": iso(job.started_at or job.created_at),
    }
    if status == "downloading":
        out["bytes_per_second"] = job.speed
        left = job.seconds_left()
        out["estimated_completion"] = iso(time.time() + left) if left is not None else None
    if status == "completed":
        out["completed_at"] = iso(job.completed_at)
    out.update(model=job.model, repo=job.repo, state=job.state, model_key=job.model_key)
    if job.error:
        out["error"] = job.error
    return out


def _service(c: ApiContext) -> Downloads:
    if c.downloads is None:
        raise ApiError(
            503,
            "Downloads are not available in this app.",
            code="downloads_off",
            type_="server_error",
        )
    return c.downloads


def _text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"'{field}' must be a non-empty string.", code="bad_request")
    return value.strip()


async def download(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    service = _service(c)
    body = parse_json_object(await request.read())
    model = _text(body, "model")
    if model is None:
        raise ApiError(
            400,
            'Say which model to download: {"model": "<publisher>/<repository>"} (a Hugging Face '
            'repository with GGUF files, or its link), optionally with "quantization": "Q4_K_M".',
            code="missing_model",
        )
    quant, file = _text(body, "quantization"), _text(body, "file")
    if quant and file:
        raise ApiError(400, "Give 'quantization' or 'file', not both.", code="bad_request")
    try:
        job = await service.request(model, file=file, quant=quant)
    except DownloadRefused as e:
        raise ApiError(e.status, str(e), code=e.code) from None
    if job.already:
        return web.json_response(
            {"status": "already_downloaded", "model": job.model, "model_key": job.model_key}
        )
    return web.json_response(job_status(job))


async def status_one(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    job = _service(c).job(request.match_info["job_id"])
    if job is None:
        raise ApiError(
            404, f"No download job {request.match_info['job_id']!r}.", code="job_not_found"
        )
    return web.json_response(job_status(job))


async def status_all(request: web.Request) -> web.Response:
    c: ApiContext = request.app[CONTEXT]
    out: dict[str, list[dict[str, Any]]] = {
        "downloading": [],
        "completed": [],
        "failed": [],
        "paused": [],
    }
    for job in _service(c).jobs():
        if not job.already:
            out[STATUS[job.state]].append(job_status(job))
    return web.json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/models/download", download)
    app.router.add_get("/api/v1/models/download/status", status_all)
    app.router.add_get("/api/v1/models/download/status/{job_id}", status_one)
