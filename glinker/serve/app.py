"""The HTTP front of ``glinker serve``: FastAPI routes, API key, limits, JSON errors, metrics.

Every ``/link`` request is checked on its own (key, body, fields, limits, queue room) before its
documents join a batch, so a bad request never touches the others. The pipeline loads in a thread
after the server starts: ``/health`` answers 503 until it is ready.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from .metrics import Metrics
from .service import Limits, RequestChecker, RequestError

log = logging.getLogger("uvicorn.error")  # printed with the server's own lines


class Backend(Protocol):
    """What links the documents: the local batcher, or Ray Serve replicas."""

    depth: int

    def start(self) -> None: ...

    async def submit(self, docs: Sequence[Any]) -> list[dict]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ServeOptions:
    limits: Limits = field(default_factory=Limits)
    api_key: str | None = None


class LinkRequest(BaseModel):
    """The ``/link`` body (for the OpenAPI schema; the route checks bodies itself, naming field and index)."""

    texts: list[str] = Field(description="documents to link")
    ids: list[str | int] | None = Field(None, description="one id per text (default: its position)")
    entities: list[list[dict[str, Any]]] | None = Field(
        None, description="given mentions per text, [{start, end, text?, label?}]; the pipeline's L1 is skipped")
    candidates: int = Field(0, ge=0, description="also return the first K L2 candidates of each mention")


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: RequestError) -> Response:
    return json_response({"error": exc.error, "detail": exc.detail}, exc.status, exc.headers)


def check_key(request: Request, key: str | None) -> None:
    """With a key set, the request must carry it as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    if key is None:
        return
    given = request.headers.get("x-api-key")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if given is None and scheme.lower() == "bearer":
        given = token.strip()
    if given is None or not hmac.compare_digest(given.encode(), key.encode()):
        raise RequestError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer KEY or X-API-Key)",
                           headers={"WWW-Authenticate": "Bearer"})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "body too large", f"{declared} bytes, more than {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body too large", f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class State:
    """The backend once loaded (None before), or why loading failed."""

    def __init__(self):
        self.backend: Backend | None = None
        self.failed: str | None = None

    def ready(self) -> Backend:
        if self.backend is None:
            detail = f"loading failed: {self.failed}" if self.failed else "the pipeline and KB are loading"
            raise RequestError(503, "not ready", detail, headers={"Retry-After": "1"})
        return self.backend

    async def load(self, load: Callable[[], Backend], on_error: Callable[[Exception], None] | None) -> None:
        try:
            backend = await asyncio.to_thread(load)
        except Exception as exc:  # noqa: BLE001 - reported by /health and the command
            self.failed = str(exc)
            log.error("glinker serve: loading failed: %s", exc)
            if on_error is not None:
                on_error(exc)
            return
        backend.start()
        self.backend = backend
        log.info("glinker serve: ready")


def create_app(checker: RequestChecker, load: Callable[[Metrics], Backend], options: ServeOptions | None = None,
               on_load_error: Callable[[Exception], None] | None = None) -> FastAPI:
    """The app; ``load(metrics)`` (run in a thread once the server is up) builds the backend."""
    options = options or ServeOptions()
    state = State()
    metrics = Metrics(lambda: state.backend.depth if state.backend else 0)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.create_task(state.load(lambda: load(metrics), on_load_error))
        yield
        if state.backend is not None:
            await state.backend.close()  # in-flight requests are done; link what is still queued
        loading.cancel()

    app = FastAPI(title="glinker", summary="Entity linking service", lifespan=lifespan)
    app.state.glinker = state
    app.state.metrics = metrics
    add_routes(app, checker, options, state, metrics)
    return app


def add_routes(app: FastAPI, checker: RequestChecker, options: ServeOptions, state: State, metrics: Metrics) -> None:
    body_schema = {"required": True, "content": {"application/json": {"schema": LinkRequest.model_json_schema()}}}

    @app.post("/link", openapi_extra={"requestBody": body_schema},
              summary="Link texts: one result per text, the fields of a `glinker link` output line")
    async def link(request: Request) -> Response:
        started = time.perf_counter()
        try:
            check_key(request, options.api_key)
            backend = state.ready()
            docs = checker.documents(await read_body(request, options.limits.max_body_bytes))
            results = await backend.submit(docs)
            metrics.linked(results)
            response = json_response({"results": results})
        except RequestError as exc:
            response = error_response(exc)
        except Exception as exc:  # noqa: BLE001 - a failed batch: its requests get 500, the server goes on
            log.exception("glinker serve: a batch failed")
            response = error_response(RequestError(500, "internal error", str(exc)))
        metrics.answered(response.status_code, time.perf_counter() - started)
        return response

    @app.get("/health", summary="200 once the pipeline and KB are loaded, 503 before")
    async def health() -> Response:
        try:
            backend = state.ready()
        except RequestError as exc:
            return json_response({"status": "failed" if state.failed else "loading", "detail": exc.detail}, 503)
        return json_response({"status": "ok", "queue_docs": backend.depth})

    @app.get("/metrics", summary="Prometheus text format")
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_response({"error": "not found" if exc.status_code == 404 else "http error",
                              "detail": str(exc.detail)}, exc.status_code, dict(exc.headers or {}))
