"""The HTTP API: MiniMax's video generation protocol, served by kinema.

The protocol: https://platform.minimax.io/docs/api-reference/video-generation-intro.

    POST /v1/video_generation         create a task            -> {"task_id", "base_resp"}
    GET  /v1/query/video_generation   its status               -> {"task_id", "status", "file_id", ...}
    GET  /v1/files/retrieve           a signed download URL    -> {"file": {..., "download_url"}, "base_resp"}
    GET  /v1/files/content/{file_id}  the mp4 (signed URL, no auth header, Range requests)
    GET  /v1/token_plan/remains       the key check mmx-cli uses to pick a region
    GET  /v1/kinema/tasks             the caller's recent tasks (for the web page)
    GET  /v1/kinema/info              served model and defaults (no auth)
    GET  /                            the web page; /openapi.json, /docs

As MiniMax: business errors are HTTP 200 with a non-zero `base_resp.status_code` (1002 rate limit or
full queue, 1004 bad key, 2013 invalid params), and every response carries a `Trace-Id` header.
Handlers run on the event loop's thread, which owns the process's only database connection; each
database call is a short local SQLite transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema import __version__
from kinema.serve import callbacks
from kinema.serve.params import InvalidParams, generation_params
from kinema.serve.protocol import (
    INVALID_PARAMS,
    OK,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNKNOWN_ERROR,
    CreateResponse,
    ErrorResponse,
    QueryResponse,
    RetrieveResponse,
    ServiceInfo,
    TaskList,
    VideoGenerationRequest,
    base_resp,
)
from kinema.serve.security import AuthError
from kinema.serve.service import Service
from kinema.serve.store import QueueFull, Task


WEB_DIR = Path(__file__).parent / "web"
CONTENT_PATH = "/v1/files/content"
MAX_BODY_BYTES = 64 * 1024  # a create body is a prompt and a few numbers; kinema takes no images
# What each route's error answers carry besides base_resp, so errors keep the route's response shape.
_ERROR_FIELDS: dict[str, dict[str, object]] = {
    "/v1/video_generation": {"task_id": ""},
    "/v1/query/video_generation": {"task_id": "", "status": ""},
    "/v1/kinema/tasks": {"tasks": []},
}


class APIError(Exception):
    """A business error: answered with HTTP 200 and a non-zero base_resp, in the route's shape."""

    def __init__(self, code: int, msg: str, **fields: object) -> None:
        super().__init__(msg)
        self.code, self.msg, self.fields = code, msg, fields


class BodyTooLarge(Exception):
    """A request body streamed past MAX_BODY_BYTES."""


class EdgeMiddleware:
    """Adds a `Trace-Id` header to every response (MiniMax's MCP clients print it with every error) and
    refuses request bodies over MAX_BODY_BYTES before they are read into memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = secrets.token_hex(16).encode()

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"trace-id", trace)]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            body = {"base_resp": base_resp(INVALID_PARAMS, f"invalid params, the request body is over "
                                                           f"{MAX_BODY_BYTES // 1024} KiB")}
            await JSONResponse(body, status_code=413)(scope, receive, send_with_trace)
            return
        received = 0

        async def receive_bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:  # a chunked body without Content-Length
                raise BodyTooLarge
            return message

        await self.app(scope, receive_bounded, send_with_trace)


def create_app(service: Service) -> FastAPI:
    """The FastAPI app over an opened `Service`; its lifespan starts the workers and background loops
    and, at shutdown, stops them and closes the service."""
    config, store, model = service.config, service.store, service.model

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start_background()
        yield
        await service.stop_background()
        service.close()

    app = FastAPI(
        title="kinema serve",
        version=__version__,
        description="Text-to-video generation with a self-hosted kinema model, over MiniMax's video API "
        "(create, query, retrieve, download). Business errors are HTTP 200 with a non-zero base_resp.",
        lifespan=lifespan,
    )
    app.add_middleware(EdgeMiddleware)

    # ------------------------------------------------------------------ errors

    def error_body(path: str, code: int, msg: str, fields: dict[str, object] | None = None) -> dict[str, object]:
        return {**_ERROR_FIELDS.get(path, {}), **(fields or {}), "base_resp": base_resp(code, msg)}

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, exc.code, exc.msg, exc.fields))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        what = first.get("msg", "malformed request")
        msg = f"invalid params, {where}: {what}" if where else f"invalid params, {what}"
        return JSONResponse(error_body(request.url.path, INVALID_PARAMS, msg))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so uvicorn logs the traceback once.
        body = error_body(request.url.path, UNKNOWN_ERROR, f"internal error: {type(exc).__name__}")
        return JSONResponse(body, status_code=500, headers={"Trace-Id": secrets.token_hex(16)})

    def owner(request: Request) -> str:
        try:
            return service.keys.owner(request.headers)
        except AuthError as e:
            raise APIError(UNAUTHORIZED, f"not authorized: {e}") from None

    def limit_queries(who: str) -> None:
        if not service.query_limit.allow(who):
            raise APIError(RATE_LIMITED, f"rate limit triggered: more than {config.query_rpm} queries per minute "
                                         "for this key, please try again later")

    def owned_task(who: str, task_id: str) -> Task:
        task = store.get(task_id.strip())
        if task is None or task.owner != who:
            hours = config.retention_s / 3600
            raise APIError(INVALID_PARAMS, f"invalid params, task {task_id[:40]!r} not found (finished tasks are "
                                           f"kept for {hours:g} h)", task_id=task_id[:40])
        return task

    # ------------------------------------------------------------------ MiniMax routes

    @app.post("/v1/video_generation", response_model=CreateResponse, tags=["MiniMax"])
    async def create_video(body: VideoGenerationRequest, request: Request) -> dict[str, object]:
        """Create a generation task; poll it with /v1/query/video_generation."""
        who = owner(request)
        try:
            params = generation_params(body, model, config)
        except InvalidParams as e:
            raise APIError(INVALID_PARAMS, f"invalid params, {e}") from None
        if body.callback_url is not None:
            problem = callbacks.check_callback_url(body.callback_url, config.callback_hosts)
            if problem is not None:
                raise APIError(INVALID_PARAMS, f"invalid params, {problem}")
        # Counted after validation: the limit is on generations (and on callback handshakes, which cost a request).
        if not service.create_limit.allow(who):
            raise APIError(RATE_LIMITED, f"rate limit triggered: more than {config.create_rpm} video generations "
                                         "per minute for this key, please try again later")
        if body.callback_url is not None:
            problem = await callbacks.handshake(service.http, body.callback_url, config.callback_timeout_s)
            if problem is not None:
                raise APIError(INVALID_PARAMS, f"invalid params, {problem}")
        try:
            task = store.create(
                owner=who, model=body.model, prompt=body.prompt, params=params, callback_url=body.callback_url,
                max_queue=config.max_queue,
            )
        except QueueFull as e:
            raise APIError(RATE_LIMITED, f"the generation queue is full: {e}") from None
        return {"task_id": task.task_id, "base_resp": base_resp(OK, "success")}

    @app.get("/v1/query/video_generation", response_model=QueryResponse, response_model_exclude_none=True,
             tags=["MiniMax"])
    async def query_video(task_id: str, request: Request) -> dict[str, object]:
        """A task's status: Queueing, Preparing, Processing, Success (with file_id) or Fail."""
        who = owner(request)
        limit_queries(who)
        task = owned_task(who, task_id)
        answer: dict[str, object] = {"task_id": task.task_id, "status": task.status}
        if task.status == "Success":
            answer.update(file_id=str(task.file_id), video_width=task.video_width, video_height=task.video_height)
        if task.status == "Fail":
            answer["base_resp"] = base_resp(task.error_code or UNKNOWN_ERROR, task.error_msg or "generation failed")
        else:
            answer["base_resp"] = base_resp(OK, "success")
        return answer

    @app.get("/v1/files/retrieve", response_model=RetrieveResponse, response_model_exclude_none=True,
             tags=["MiniMax"])
    async def retrieve_file(file_id: str, request: Request) -> dict[str, object]:
        """A finished video's size and a fresh signed download URL (valid `url_ttl_s`)."""
        who = owner(request)
        limit_queries(who)
        fid = parse_file_id(file_id)
        task = store.by_file(fid) if fid is not None else None
        path = service.file_path(task.file_path) if task is not None and task.file_path else None
        if task is None or task.owner != who or path is None or not path.is_file():
            raise APIError(INVALID_PARAMS, f"invalid params, file {file_id[:40]!r} not found")
        sig = service.signer.sign(task.file_id, config.url_ttl_s)
        base = config.public_url or str(request.base_url)
        url = f"{base.rstrip('/')}{CONTENT_PATH}/{task.file_id}?expires={sig.expires}&signature={sig.signature}"
        file = {
            "file_id": task.file_id, "bytes": path.stat().st_size, "created_at": int(task.finished_at or 0),
            "filename": f"kinema_{task.task_id}.mp4", "purpose": "video_generation", "download_url": url,
        }
        return {"file": file, "base_resp": base_resp(OK, "success")}

    @app.api_route(
        CONTENT_PATH + "/{file_id}", methods=["GET", "HEAD"], tags=["MiniMax"], response_class=FileResponse,
        responses={200: {"content": {"video/mp4": {}}, "description": "the video (Range requests supported)"},
                   403: {"model": ErrorResponse, "description": "forged or expired URL"},
                   404: {"model": ErrorResponse, "description": "no such file (or deleted by retention)"}},
    )
    async def download(file_id: str, expires: str = "", signature: str = "") -> Response:
        """The mp4 behind a signed URL from /v1/files/retrieve; no Authorization header needed."""
        fid = parse_file_id(file_id)
        if fid is None:
            return JSONResponse({"base_resp": base_resp(INVALID_PARAMS, "no such file")}, status_code=404)
        problem = service.signer.check(fid, expires, signature)
        if problem is not None:
            return JSONResponse({"base_resp": base_resp(UNAUTHORIZED, problem)}, status_code=403)
        task = store.by_file(fid)
        path = service.file_path(task.file_path) if task is not None and task.file_path else None
        if path is None or not path.is_file():
            return JSONResponse({"base_resp": base_resp(INVALID_PARAMS, "the file has been deleted")},
                                status_code=404)
        return FileResponse(path, media_type="video/mp4", filename=f"kinema_{task.task_id}.mp4",
                            content_disposition_type="inline", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/v1/token_plan/remains", response_model=ErrorResponse, tags=["MiniMax"])
    async def token_plan(request: Request) -> dict[str, object]:
        """Key check: success for a known key (mmx-cli probes this to pick a region)."""
        owner(request)
        return {"base_resp": base_resp(OK, "success")}

    # ------------------------------------------------------------------ kinema routes

    @app.get("/v1/kinema/tasks", response_model=TaskList, response_model_exclude_none=True, tags=["kinema"])
    async def list_tasks(request: Request, limit: int = Query(20, ge=1, le=100)) -> dict[str, object]:
        """The caller's most recent tasks, newest first."""
        who = owner(request)
        limit_queries(who)
        tasks = [summary(t) for t in store.recent(who, limit)]
        return {"tasks": tasks, "base_resp": base_resp(OK, "success")}

    @app.get("/v1/kinema/info", response_model=ServiceInfo, tags=["kinema"])
    async def info() -> dict[str, object]:
        """The served model, its defaults, and whether API keys are required."""
        d = model.defaults
        return {
            "model": model.name, "auth_required": service.keys.required, "steps": d.steps,
            "frames": d.frames, "width": d.width, "height": d.height, "fps": d.fps,
            "workers": config.workers, "workers_running": len(service.pool.pids()), "queued": store.waiting_count(),
            "base_resp": base_resp(OK, "success"),
        }

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app


def parse_file_id(text: str) -> int | None:
    """A file id from a query or path: digits only (ComfyUI sends `int(file_id)`, others the string)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def summary(task: Task) -> dict[str, object]:
    return {
        "task_id": task.task_id, "status": task.status, "prompt": task.prompt, "created_at": int(task.created_at),
        "file_id": str(task.file_id) if task.status == "Success" else None,
        "video_width": task.video_width, "video_height": task.video_height,
        "status_msg": task.error_msg or "",
    }
